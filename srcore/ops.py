"""The one place where models choose between Triton kernels and their PyTorch references.

`backend` is always an explicit argument: "torch" (the references in `kernels.reference`) or "triton"
(`kernels.<op>`). `resolve_backend("auto", device)` maps the `runtime.kernels` param to one of them:
Triton on a CUDA device that can run every compiled variant (bf16 tensor-core MMA, from compute
capability 8.0, and the shared memory the largest tile config asks for), the reference elsewhere; on a
CUDA device that cannot, it says why, once per device.
"""
from __future__ import annotations

import functools
import sys

import torch

from kernels import reference

BACKENDS = ("auto", "triton", "torch")
MIN_CAPABILITY = (8, 0)  # bf16 tensor-core MMA (Ampere); the kernels' bf16/fp16 tl.dot needs it


def resolve_backend(name: str, device: torch.device | str) -> str:
    """Turn a `runtime.kernels` value into "triton" or "torch" for tensors on `device`."""
    if name not in BACKENDS:
        raise ValueError(f"runtime.kernels must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name != "auto":
        return name
    device = torch.device(device)
    if device.type != "cuda":
        return "torch"
    index = device.index if device.index is not None else torch.cuda.current_device()
    return _auto_on_cuda(index)


@functools.lru_cache(maxsize=None)
def _auto_on_cuda(index: int) -> str:
    """`auto` on CUDA device `index`, decided (and, when it falls back, said) once per process and device."""
    capability, shared, name = device_limits(index)
    why = triton_unfit_reason(capability, shared)
    if why is None:
        return "triton"
    print(f"runtime.kernels=auto: the PyTorch reference on cuda:{index} ({name}): {why}", file=sys.stderr)
    return "torch"


def device_limits(index: int) -> tuple[tuple[int, int], int, str]:
    """(compute capability, opt-in shared memory per block in bytes, name) of CUDA device `index`; the
    shared memory as Triton's driver reports it, the limit its launches are checked against."""
    import triton

    shared = triton.runtime.driver.active.utils.get_device_properties(index)["max_shared_mem"]
    return torch.cuda.get_device_capability(index), shared, torch.cuda.get_device_name(index)


def triton_unfit_reason(capability: tuple[int, int], shared_bytes: int) -> str | None:
    """Why the Triton kernels cannot run on a device with this compute capability and opt-in shared memory
    per block, or None when they can."""
    from kernels.conv_block import max_shared_bytes  # imports triton: only when a CUDA device is asked about

    if capability < MIN_CAPABILITY:
        return (f"compute capability {capability[0]}.{capability[1]} has no bf16 tensor-core MMA "
                f"(needs {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]})")
    if shared_bytes < max_shared_bytes():
        return f"{shared_bytes} B of shared memory per block, the kernels' tiles need {max_shared_bytes()} B"
    return None


def conv3x3_act(x, weight, bias, *, backend: str = "torch", **kwargs) -> torch.Tensor:
    """residual + scale * act(conv3x3(x) + bias); see `kernels.reference.conv3x3_act`."""
    if backend == "triton":
        from kernels import conv_block
        return conv_block.conv3x3_act(x, weight, bias, **kwargs)
    check_backend(backend)
    return reference.conv3x3_act(x, weight, bias, **kwargs)


def pixel_shuffle_act(x, upscale: int, *, backend: str = "torch", **kwargs) -> torch.Tensor:
    """act(pixel_shuffle(x, upscale)); see `kernels.reference.pixel_shuffle_act`."""
    if backend == "triton":
        from kernels import pixel_shuffle
        return pixel_shuffle.pixel_shuffle_act(x, upscale, **kwargs)
    check_backend(backend)
    return reference.pixel_shuffle_act(x, upscale, **kwargs)


def prelu(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """PReLU with the reference's cheaper backward on every backend (an elementwise op: no Triton twin)."""
    return reference.prelu(x, weight)


def ragan_loss(real_logits, fake_logits, target: str, *, backend: str = "torch") -> torch.Tensor:
    """Relativistic average GAN loss; see `kernels.reference.ragan_loss`."""
    if backend == "triton":
        from kernels import ragan_loss as ragan
        return ragan.ragan_loss(real_logits, fake_logits, target)
    check_backend(backend)
    return reference.ragan_loss(real_logits, fake_logits, target)


def check_backend(backend: str) -> None:
    if backend not in ("torch", "triton"):
        raise ValueError(f"kernel backend must be 'torch' or 'triton' (resolve 'auto' first), got {backend!r}")
