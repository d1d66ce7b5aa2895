"""The one place where models choose between Triton kernels and their PyTorch references.

`backend` is always an explicit argument: "torch" (the references in `kernels.reference`) or "triton"
(`kernels.<op>`). `resolve_backend("auto", device)` maps the `runtime.kernels` param to one of them:
Triton on CUDA, the reference elsewhere.
"""
from __future__ import annotations

import torch

from kernels import reference

BACKENDS = ("auto", "triton", "torch")


def resolve_backend(name: str, device: torch.device | str) -> str:
    """Turn a `runtime.kernels` value into "triton" or "torch" for tensors on `device`."""
    if name not in BACKENDS:
        raise ValueError(f"runtime.kernels must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "auto":
        return "triton" if torch.device(device).type == "cuda" else "torch"
    return name


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
