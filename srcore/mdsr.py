"""MDSR, EDSR's multi-scale model (Lim et al. 2017): one shared body, a small head and an upsampler per scale.

    x - mean -> conv_first -> pre["x<s>"] (two 5x5 residual blocks) -> body (EDSR blocks) + conv_body, with a
    skip from after pre -> upsample["x<s>"] (pixel shuffle) -> conv_last (shared) -> + mean

as EDSR-PyTorch's mdsr.py, on [0, 1] pixels. Only the scale being run is computed, so a step on a x2 batch
trains pre["x2"], upsample["x2"] and the shared layers. forward takes `scale=` (None: the default
`scale`); srcore.multiscale.select_scale gives a view whose plain model(x) runs another of its scales.
num_feat=64, num_block=16 is the paper's baseline MDSR (3.2M parameters at x2, x3, x4), num_block=80 MDSR
(8.0M).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from srcore.blocks import (Conv3x3, EDSRBlock, ShuffleUp, bicubic_up, channel_mean, check_kernels, init_convs,
                           init_generator, upsample_steps)
from srcore.multiscale import check_scales, pick_scale


class ResBlock5(nn.Module):
    """MDSR's scale-specific pre-processing block: x + conv(ReLU(conv(x))) with 5x5 kernels. x: (B, F, H, W)."""

    def __init__(self, num_feat: int):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 5, padding=2)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class MDSR(nn.Module):
    """x: (B, in_ch, H, W) in [0, 1] -> (B, out_ch, sH, sW) for s = `scale` or the forward's scale.

    scales: every scale it has (None: just `scale`); its pre-processing blocks and upsamplers are keyed
    "x2", "x3", "x4" in the state dict. global_residual adds MATLAB bicubic(x) instead of the mean.
    """
    name = "mdsr"

    def __init__(self, in_ch: int = 3, out_ch: int = 3, scale: int = 4, scales: Sequence[int] | None = None,
                 num_feat: int = 64, num_block: int = 16, res_scale: float = 1.0, global_residual: bool = False,
                 kernels: str = "torch"):
        super().__init__()
        self.scales = check_scales(scale, scales, self.name)
        self.arch_args = dict(in_ch=in_ch, out_ch=out_ch, scale=scale, scales=self.scales, num_feat=num_feat,
                              num_block=num_block, res_scale=res_scale, global_residual=global_residual)
        self.scale, self.global_residual, self.kernels = scale, global_residual, check_kernels(kernels)
        self.register_buffer("in_mean", channel_mean(in_ch), persistent=False)
        self.register_buffer("out_mean", channel_mean(out_ch), persistent=False)
        self.conv_first = Conv3x3(in_ch, num_feat, kernels)
        self.pre = nn.ModuleDict({f"x{s}": nn.Sequential(ResBlock5(num_feat), ResBlock5(num_feat))
                                  for s in self.scales})
        self.body = nn.Sequential(*(EDSRBlock(num_feat, res_scale, kernels) for _ in range(num_block)))
        self.conv_body = Conv3x3(num_feat, num_feat, kernels)
        self.upsample = nn.ModuleDict({f"x{s}": nn.Sequential(*(ShuffleUp(num_feat, f, kernels, prelu=False)
                                                                for f in upsample_steps(s))) for s in self.scales})
        self.conv_last = Conv3x3(num_feat, out_ch, kernels)
        init_generator(self)
        init_convs(self.pre, 0.1)  # residual branches start small, as the body's

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        s = pick_scale(self, scale)
        feat = self.pre[f"x{s}"](self.conv_first(x - self.in_mean))  # (B, F, H, W)
        y = self.conv_body(self.body(feat), residual=feat)
        out = self.conv_last(self.upsample[f"x{s}"](y))  # (B, out_ch, sH, sW)
        return out + (bicubic_up(x, s) if self.global_residual else self.out_mean)
