"""MATLAB-compatible bicubic resizing (`imresize(..., 'bicubic')`), batched, differentiable, CPU or CUDA.

Published SR tables make their LR inputs with MATLAB's imresize: cubic kernel with a = -0.5, the kernel
widened by 1/scale when downscaling (antialiasing), symmetric border handling. PIL, OpenCV and
`torch.nn.functional.interpolate` each differ from it (a = -0.75, no antialias, or other borders), which
moves PSNR by tenths of a dB. This module follows MATLAB's `contributions()` step by step.
"""
from __future__ import annotations

import math

import torch


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5, as in MATLAB's imresize."""
    absx = x.abs()
    absx2, absx3 = absx**2, absx**3
    near = (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1)
    far = (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2))
    return near + far


def contributions(in_len: int, out_len: int, scale: float, antialias: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and source indices of each output sample along one dimension.

    Returns (weights, indices), both (out_len, P): output i = sum_p weights[i, p] * input[indices[i, p]].
    Indices are 0-based and already folded back into range by symmetric padding. Computed in float64.
    """
    kernel_width = 4.0
    if scale < 1 and antialias:
        # Widening the kernel by 1/scale low-pass filters before subsampling (MATLAB's antialiasing).
        kernel = lambda t: scale * cubic(scale * t)  # noqa: E731
        kernel_width /= scale
    else:
        kernel = cubic
    x = torch.arange(1, out_len + 1, dtype=torch.float64)  # MATLAB's 1-based output coordinates
    u = x / scale + 0.5 * (1 - 1 / scale)  # where each output sample falls in input coordinates
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)  # (out_len, taps), 1-based
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Symmetric padding: index sequence 1..n, n..1 repeated, i.e. mirror including the edge sample.
    period = 2 * in_len
    folded = torch.remainder(indices.long() - 1, period)
    folded = torch.where(folded < in_len, folded, period - 1 - folded)
    keep = weights.ne(0).any(dim=0)  # MATLAB drops taps that are zero for every output sample
    return weights[:, keep], folded[:, keep]


def resize_dim(x: torch.Tensor, dim: int, out_len: int, scale: float, antialias: bool = True) -> torch.Tensor:
    """Resize x along `dim` to `out_len` samples with MATLAB's bicubic weights; other dims untouched."""
    weights, indices = contributions(x.shape[dim], out_len, scale, antialias)
    weights = weights.to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float64)
    indices = indices.to(x.device)
    x = x.movedim(dim, -1)  # (..., in_len)
    gathered = x[..., indices]  # (..., out_len, taps)
    out = (gathered * weights).sum(dim=-1)  # (..., out_len)
    return out.movedim(-1, dim)


def output_size(in_size: tuple[int, int], scale: float) -> tuple[int, int]:
    """MATLAB's ceil(scale * size), tolerant of float error (510 * (1/3) must give 170, not 171)."""
    return tuple(math.ceil(round(n * scale, 9)) for n in in_size)  # type: ignore[return-value]


def imresize(x: torch.Tensor, scale: float | None = None, size: tuple[int, int] | None = None,
             antialias: bool = True, uint8: bool = False) -> torch.Tensor:
    """MATLAB `imresize(x, scale)` or `imresize(x, [h w])`, bicubic, over the last two dims of x.

    x: (..., H, W) float tensor. Exactly one of `scale` (> 0) and `size` (out_h, out_w) is given.
    uint8=False: any range, nothing clamped or rounded; differentiable.
    uint8=True: x in [0, 1] holds 8-bit values (k/255) and the result is what MATLAB gives for a uint8
    image: MATLAB stores each 1-D pass in the input's class, so every pass is rounded (half away from
    zero) and clamped to 0..255. Published LR sets match this bit for bit; skipping the intermediate
    rounding changes ~15% of their pixels. Keeps dtype and device.
    """
    if (scale is None) == (size is None):
        raise ValueError("imresize needs exactly one of scale and size")
    if x.dim() < 2 or not x.is_floating_point():
        raise ValueError(f"imresize needs a float tensor (..., H, W), got {x.dtype} of shape {tuple(x.shape)}")
    in_h, in_w = x.shape[-2:]
    if scale is not None:
        if not scale > 0:
            raise ValueError(f"imresize scale must be > 0, got {scale}")
        out_h, out_w = output_size((in_h, in_w), scale)
        scale_h = scale_w = scale
    else:
        out_h, out_w = size
        if out_h < 1 or out_w < 1:
            raise ValueError(f"imresize size must be positive, got {size}")
        scale_h, scale_w = out_h / in_h, out_w / in_w
    if uint8:
        x = round_half_away(x * 255)  # work on MATLAB's 0..255 integers so ties are exact
    # MATLAB resizes the dimension with the smaller scale first (rows first on a tie).
    steps = [(-2, out_h, scale_h), (-1, out_w, scale_w)]
    for dim, out_len, s in sorted(steps, key=lambda step: step[2]):
        x = resize_dim(x, dim, out_len, s, antialias)
        if uint8:
            x = round_half_away(x).clamp(0, 255)
    return x / 255 if uint8 else x


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Round half away from zero, as MATLAB does (torch.round rounds half to even)."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def modcrop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop the bottom/right of x: (..., H, W) so that H and W are multiples of `scale` (MATLAB modcrop)."""
    h, w = x.shape[-2:]
    if h < scale or w < scale:
        raise ValueError(f"image of {h}x{w} is smaller than the scale {scale}")
    return x[..., : h - h % scale, : w - w % scale]


def downscale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The protocol's LR from an 8-bit HR: MATLAB imresize(modcrop(HR, s), 1/s) on uint8.

    hr: (..., H, W) in [0, 1] on the 8-bit grid -> (..., H//s, W//s) on the 8-bit grid, equal to the
    published `LR_bicubic` images bit for bit.
    """
    return imresize(modcrop(hr, scale), 1.0 / scale, uint8=True)
