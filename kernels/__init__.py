"""Triton kernels for the generators' hot paths, one file per op, with PyTorch references.

`kernels.reference` holds the PyTorch references (the CPU path and the tests' oracle); each op file
(`conv_block`, `pixel_shuffle`, `ragan_loss`) holds its Triton kernels, launchers, one
`torch.autograd.Function` and a plain function with the same signature as its reference.
Nothing here is chosen implicitly: `srcore.ops` dispatches on an explicit backend name.
"""
