"""The Y-channel path of SRCNN and VDSR: a network that sees only luma, inside a model that takes and returns RGB.

SRCNN and VDSR super-resolve MATLAB's Y channel (rgb2ycbcr, BT.601 studio swing) and upscale Cb and Cr
bicubically. `through_luma` does exactly that around any Y network, so a Y model is an ordinary RGB -> RGB
generator: evaluation, tiled inference, validation and the GAN stage run it without knowing. The checkpoint
says which it is (arch_args colour "y"; `is_luma_model`).

The conversions are written as per-channel sums, not a matrix product: under bf16 autocast a matmul would
round Y to bf16 (about one grey level), while elementwise ops keep the input's float32/float64.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from srcore.resize import imresize

# MATLAB rgb2ycbcr for [0, 1] images: ycbcr = OFFSET + YCBCR_FROM_RGB @ rgb (rows Y, Cb, Cr).
YCBCR_FROM_RGB = torch.tensor([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]],
                              dtype=torch.float64) / 255
YCBCR_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64) / 255
RGB_FROM_YCBCR = torch.linalg.inv(YCBCR_FROM_RGB)  # MATLAB ycbcr2rgb


def mix(x: torch.Tensor, matrix: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """offset + matrix @ x over the channel dim: x (B, 3, H, W) -> (B, rows, H, W), in x's dtype."""
    channels = x.unbind(1)
    rows = [sum(float(w) * c for w, c in zip(row, channels)) + float(o) for row, o in zip(matrix, offset)]
    return torch.stack(rows, 1)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """MATLAB rgb2ycbcr, unrounded: rgb (B, 3, H, W) in [0, 1] -> YCbCr (B, 3, H, W), Y in [16, 235] / 255."""
    return mix(rgb, YCBCR_FROM_RGB, YCBCR_OFFSET)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """MATLAB ycbcr2rgb, unclamped: the inverse of rgb_to_ycbcr. (B, 3, H, W) -> (B, 3, H, W)."""
    return mix(ycbcr, RGB_FROM_YCBCR, -RGB_FROM_YCBCR @ YCBCR_OFFSET)


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """MATLAB's Y of rgb (B, 3, H, W) in [0, 1] -> (B, 1, H, W) in [16, 235] / 255 (the scoring protocol's Y)."""
    return mix(rgb, YCBCR_FROM_RGB[:1], YCBCR_OFFSET[:1])


def through_luma(net: Callable[[torch.Tensor], torch.Tensor], rgb: torch.Tensor, scale: int) -> torch.Tensor:
    """Super-resolve rgb (B, 3, h, w) in [0, 1] with a Y network: (B, 3, s*h, s*w), unclamped.

    net: Y (B, 1, h, w) -> Y (B, 1, s*h, s*w); Cb and Cr are upscaled x`scale` by MATLAB bicubic and merged
    with net's Y before converting back to RGB, as SRCNN's and VDSR's papers evaluate.
    """
    ycbcr = rgb_to_ycbcr(rgb)  # (B, 3, h, w)
    chroma = imresize(ycbcr[:, 1:], scale=scale)  # (B, 2, s*h, s*w)
    y = net(ycbcr[:, :1])  # (B, 1, s*h, s*w)
    if y.shape[-2:] != chroma.shape[-2:]:
        raise ValueError(f"through_luma: the Y network made {tuple(y.shape)} from {tuple(rgb.shape)}, "
                         f"not x{scale} (expected {tuple(chroma.shape[-2:])} pixels)")
    return ycbcr_to_rgb(torch.cat([y.to(chroma.dtype), chroma], 1))


def is_luma_model(model: nn.Module) -> bool:
    """Does `model` super-resolve only Y (its checkpoint's arch_args colour is "y")? It still takes RGB."""
    return getattr(model, "arch_args", {}).get("colour") == "y"
