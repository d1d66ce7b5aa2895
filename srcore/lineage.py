"""The lineage's pre-upsampling networks: SRCNN (Dong et al. 2014) and VDSR (Kim et al. 2016).

Both refine the MATLAB-bicubic-upscaled image (the protocol's bicubic, srcore.resize) instead of learning the
upsampling, so their weights hold no scale: one model serves every scale it was trained on (VDSR's
multi-scale model), and forward takes `scale=` like MDSR (srcore.multiscale). As in the papers they run on
the Y channel (colour "y": one input and output channel, Cb and Cr bicubic, srcore.ychannel); colour "rgb"
refines all three channels. Either way the model takes and returns RGB: x (B, 3, h, w) in [0, 1] ->
(B, 3, s*h, s*w).

Receptive radius (for tiled inference's pad), in LR pixels: 2 for the bicubic plus the convs' radius in HR
pixels divided by the scale: SRCNN 9-5-5 8/s, VDSR-20 20/s, so at most 6 and 12 at x2.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from srcore.blocks import Conv3x3, bicubic_up, check_kernels, init_convs
from srcore.multiscale import check_scales, pick_scale
from srcore.ychannel import through_luma

COLOURS = {"y": 1, "rgb": 3}  # colour -> channels the network itself sees


def colour_channels(colour: str, name: str) -> int:
    if colour not in COLOURS:
        raise ValueError(f"{name}: colour must be one of {', '.join(map(repr, COLOURS))}, got {colour!r}")
    return COLOURS[colour]


def pre_upsampled(refine: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int, colour: str
                  ) -> torch.Tensor:
    """refine(MATLAB bicubic x`scale` of x), on Y (Cb, Cr bicubic) or on RGB: x (B, 3, h, w) -> (B, 3, sh, sw)."""
    def upscale(t: torch.Tensor) -> torch.Tensor:
        return refine(bicubic_up(t, scale))

    return through_luma(upscale, x, scale) if colour == "y" else upscale(x)


def check_sizes(sizes: Sequence[int]) -> tuple[int, int, int]:
    sizes = tuple(int(k) for k in sizes)
    if len(sizes) != 3 or any(k < 1 or k % 2 == 0 for k in sizes):
        raise ValueError(f"srcnn: sizes must be three odd kernel sizes f1-f2-f3 such as (9, 5, 5) or (9, 1, 5), "
                         f"got {sizes}")
    return sizes  # type: ignore[return-value]


class SRCNN(nn.Module):
    """SRCNN: conv_first f1 x f1 (num_feat) + ReLU, conv_map f2 x f2 (num_feat / 2) + ReLU, conv_last f3 x f3
    (the paper's patch extraction, non-linear mapping and reconstruction), zero-padded to keep the size.

    sizes (9, 5, 5) is the paper's best 9-5-5 network, (9, 1, 5) its base 9-1-5; num_feat 64 gives its
    64/32 filters (every width the paper tries halves in the second layer). global_residual adds the
    bicubic input to the output (not in the paper; VDSR's idea).
    """
    name = "srcnn"

    def __init__(self, colour: str = "y", scale: int = 4, scales: Sequence[int] | None = None,
                 sizes: Sequence[int] = (9, 5, 5), num_feat: int = 64, global_residual: bool = False,
                 kernels: str = "torch"):
        super().__init__()
        channels = colour_channels(colour, self.name)
        self.scales = check_scales(scale, scales, self.name)
        sizes = check_sizes(sizes)
        self.arch_args = dict(colour=colour, scale=scale, scales=self.scales, sizes=sizes, num_feat=num_feat,
                              global_residual=global_residual)
        self.colour, self.scale, self.global_residual = colour, scale, global_residual
        self.kernels = check_kernels(kernels)  # its 9x9 / 5x5 / 1x1 convs have no fused kernel: always torch
        k1, k2, k3 = sizes
        self.conv_first = nn.Conv2d(channels, num_feat, k1, padding=k1 // 2)
        self.conv_map = nn.Conv2d(num_feat, num_feat // 2, k2, padding=k2 // 2)
        self.conv_last = nn.Conv2d(num_feat // 2, channels, k3, padding=k3 // 2)
        init_convs(self)
        init_convs(self.conv_last, 0.1)  # start near 0 (or near bicubic, with global_residual)

    def refine(self, up: torch.Tensor) -> torch.Tensor:
        """up: the bicubic-upscaled (B, C, H, W) -> (B, C, H, W)."""
        out = self.conv_last(F.relu(self.conv_map(F.relu(self.conv_first(up)))))
        return out + up if self.global_residual else out

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        return pre_upsampled(self.refine, x, pick_scale(self, scale), self.colour)


class VDSR(nn.Module):
    """VDSR: num_layers 3x3 convs of num_feat channels with ReLU between (20 of 64 in the paper), plus the
    bicubic input (global_residual, the paper's residual learning). bias=False gives the common PyTorch
    port's bias-free layers."""
    name = "vdsr"

    def __init__(self, colour: str = "y", scale: int = 4, scales: Sequence[int] | None = None, num_feat: int = 64,
                 num_layers: int = 20, bias: bool = True, global_residual: bool = True, kernels: str = "torch"):
        super().__init__()
        channels = colour_channels(colour, self.name)
        self.scales = check_scales(scale, scales, self.name)
        if num_layers < 2:
            raise ValueError(f"vdsr: num_layers counts every conv, first and last included: >= 2, got {num_layers}")
        self.arch_args = dict(colour=colour, scale=scale, scales=self.scales, num_feat=num_feat,
                              num_layers=num_layers, bias=bias, global_residual=global_residual)
        self.colour, self.scale, self.global_residual = colour, scale, global_residual
        self.kernels = check_kernels(kernels)
        self.conv_first = Conv3x3(channels, num_feat, kernels, bias=bias)
        self.body = nn.ModuleList(Conv3x3(num_feat, num_feat, kernels, bias=bias) for _ in range(num_layers - 2))
        self.conv_last = Conv3x3(num_feat, channels, kernels, bias=bias)
        init_convs(self)  # He et al.'s init, as the paper
        init_convs(self.conv_last, 0.1)  # the output starts near the bicubic input

    def refine(self, up: torch.Tensor) -> torch.Tensor:
        """up: the bicubic-upscaled (B, C, H, W) -> (B, C, H, W)."""
        feat = self.conv_first(up, act="relu")  # (B, F, H, W)
        for conv in self.body:
            feat = conv(feat, act="relu")
        return self.conv_last(feat, residual=up if self.global_residual else None)

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        return pre_upsampled(self.refine, x, pick_scale(self, scale), self.colour)
