"""Building blocks the generators share (srcore.models and the lineage's modules): fused 3x3 convs, pixel-shuffle
upsamplers, EDSR's residual block and mean, MATLAB bicubic upsampling, initialisation and argument checks.

Every 3x3 conv + bias + activation (+ residual, + scale) goes through `ops.conv3x3_act` and every pixel
shuffle + activation through `ops.pixel_shuffle_act`, with the backend ("torch" or "triton") fixed at
construction, so the Triton kernels replace the PyTorch references without touching the models.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from srcore import ops
from srcore.resize import imresize

UPSAMPLE_STEPS = {2: (2,), 3: (3,), 4: (2, 2)}  # scale -> factor of each upsampling step
KERNELS = ("torch", "triton")
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)  # EDSR's MeanShift constants


def upsample_steps(scale: int) -> tuple[int, ...]:
    """The x2/x3 steps that make up `scale`, or a ValueError naming the allowed scales."""
    if scale not in UPSAMPLE_STEPS:
        raise ValueError(f"generator scale must be one of {', '.join(map(str, UPSAMPLE_STEPS))}, got {scale!r}")
    return UPSAMPLE_STEPS[scale]


def check_kernels(kernels: str) -> str:
    """`kernels` itself if it is a resolved backend, else a ValueError saying how to resolve it."""
    if kernels not in KERNELS:
        raise ValueError(f"generator kernels must be 'torch' or 'triton' (resolve 'auto' with "
                         f"srcore.ops.resolve_backend first), got {kernels!r}")
    return kernels


def bicubic_up(x: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB bicubic x`scale` (the scoring protocol's): (B, C, H, W) -> (B, C, sH, sW)."""
    return imresize(x, scale=scale)


def init_convs(module: nn.Module, gain: float = 1.0) -> None:
    """Kaiming-normal (fan_in) weights times `gain`, zero biases, for every conv in `module`."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in")
            with torch.no_grad():
                m.weight.mul_(gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def init_generator(model: nn.Module) -> None:
    """Kaiming everywhere; gain 0.1 on the residual branches (`body` blocks, as ESRGAN and MSRResNet do,
    and `conv_body`, the trunk's own branch) and on `conv_last`.

    The small gains start every block near the identity and the output near its baseline (0, EDSR's
    mean, or bicubic(x) with global_residual), so an untrained model gives values in a sane range.
    RRDBNet's trunk still grows ~1.2x per RRDB (x + 0.2 * ~x, as in ESRGAN): its untrained output
    spreads ~0.7 around 0 at 23 blocks, against ~0.1 for the other two.
    """
    init_convs(model)
    for part in (model.body, model.conv_body, model.conv_last):
        init_convs(part, 0.1)


class Conv3x3(nn.Conv2d):
    """3x3 conv, padding 1, run as the fused op: residual + scale * act(conv(x) + bias).

    x: (B, in_ch, H, W) -> (B, out_ch, H, W). Keyword arguments of forward are those of
    `ops.conv3x3_act` (act, prelu_weight, negative_slope, residual, scale).
    """

    def __init__(self, in_ch: int, out_ch: int, kernels: str, bias: bool = True):
        super().__init__(in_ch, out_ch, 3, padding=1, bias=bias)
        self.kernels = kernels

    def forward(self, x: torch.Tensor, **fused) -> torch.Tensor:
        return ops.conv3x3_act(x, self.weight, self.bias, backend=self.kernels, **fused)


class ShuffleUp(nn.Module):
    """conv3x3 (C -> C*r*r), pixel shuffle x r, optional PReLU: (B, C, H, W) -> (B, C, rH, rW)."""

    def __init__(self, num_feat: int, factor: int, kernels: str, prelu: bool):
        super().__init__()
        self.factor, self.kernels = factor, kernels
        self.conv = Conv3x3(num_feat, num_feat * factor**2, kernels)
        self.prelu = nn.PReLU(num_feat) if prelu else None  # per output channel, as the fused op indexes it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = {} if self.prelu is None else dict(act="prelu", prelu_weight=self.prelu.weight)
        return ops.pixel_shuffle_act(self.conv(x), self.factor, backend=self.kernels, **act)


class EDSRBlock(nn.Module):
    """x + res_scale * conv(ReLU(conv(x))), no BN (Lim et al. 2017). x: (B, C, H, W)."""

    def __init__(self, num_feat: int, res_scale: float, kernels: str):
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = Conv3x3(num_feat, num_feat, kernels)
        self.conv2 = Conv3x3(num_feat, num_feat, kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x, act="relu"), residual=x, scale=self.res_scale)


def channel_mean(channels: int) -> torch.Tensor:
    """EDSR's MeanShift constant, (1, C, 1, 1): DIV2K's RGB mean for 3 channels, else mid-grey."""
    mean = torch.tensor(DIV2K_RGB_MEAN) if channels == 3 else torch.full((channels,), 0.5)
    return mean.view(1, channels, 1, 1)
