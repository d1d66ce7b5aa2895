"""Triton kernels for the generators' hot paths, one file per op, with PyTorch references.

`kernels.reference` holds the PyTorch references (the CPU path and the tests' oracle); each op file
(`conv_block` with its device code in `conv_block_kernels`, `pixel_shuffle`, `ragan_loss`) holds its Triton
kernels, launchers, one `torch.autograd.Function` and a plain function with the same signature as its
reference; `launch` holds the rules every launcher follows. Nothing here is chosen implicitly: `srcore.ops`
dispatches on an explicit backend name. Tools: `capture` records launches as Triton's JIT specializes them,
`compile_report` compiles them for sm_80/sm_90 on a CPU, `bench` (the DVC stage) times or reports them,
`gpu_check` validates them on a GPU (`make gpu-check`).
"""
