"""Generators, built by name from `GENERATORS`: SRResNet (SRGAN), EDSR and RRDBNet (ESRGAN) here; the lineage's
pre-upsampling SRCNN and VDSR (srcore.lineage) and EDSR's multi-scale MDSR (srcore.mdsr) beside them.

The building blocks they share live in srcore.blocks (fused 3x3 convs through `ops`, so the Triton kernels
replace the PyTorch references without touching the models). Parameters live in ordinary nn.Conv2d /
nn.PReLU / nn.BatchNorm2d modules, so state-dict keys are the usual `...weight`, `...bias`; RRDBNet uses
BasicSR's names so ESRGAN weights can be mapped onto it. Each generator carries `name` (its GENERATORS key)
and `arch_args` (its constructor arguments minus `kernels`): `build_generator(m.name, **m.arch_args)`
rebuilds it, e.g. from a checkpoint. Every generator takes and returns RGB (B, 3, H, W) in [0, 1]; a Y-channel
model (arch_args colour "y") converts inside (srcore.ychannel), so callers need not know.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from srcore import ops
from srcore.blocks import (Conv3x3, EDSRBlock, ShuffleUp, bicubic_up, channel_mean, check_kernels, init_generator,
                           upsample_steps)
from srcore.blocks import DIV2K_RGB_MEAN, init_convs  # noqa: F401 (re-exported: srcore.weights and tests use them)
from srcore.lineage import SRCNN, VDSR
from srcore.mdsr import MDSR


class SRResBlock(nn.Module):
    """x + BN(conv(PReLU(BN(conv(x))))) (SRGAN), or without BN x + conv(PReLU(conv(x))). x: (B, C, H, W)."""

    def __init__(self, num_feat: int, use_bn: bool, kernels: str):
        super().__init__()
        # A conv bias right before BN is cancelled by its mean subtraction (and would get no gradient).
        self.conv1 = Conv3x3(num_feat, num_feat, kernels, bias=not use_bn)
        self.bn1 = nn.BatchNorm2d(num_feat) if use_bn else None
        self.prelu = nn.PReLU(num_feat)
        self.conv2 = Conv3x3(num_feat, num_feat, kernels, bias=not use_bn)
        self.bn2 = nn.BatchNorm2d(num_feat) if use_bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bn1 is None:  # no BN in between: activation and skip fuse into the convs
            return self.conv2(self.conv1(x, act="prelu", prelu_weight=self.prelu.weight), residual=x)
        y = ops.prelu(self.bn1(self.conv1(x)), self.prelu.weight)
        return x + self.bn2(self.conv2(y))


class SRResNet(nn.Module):
    """SRGAN's generator (Ledig et al. 2017); use_bn=False gives the MSRResNet variant.

    x: (B, in_ch, H, W) in [0, 1] -> (B, out_ch, sH, sW). global_residual adds MATLAB bicubic(x).
    """
    name = "srresnet"

    def __init__(self, in_ch: int = 3, out_ch: int = 3, scale: int = 4, num_feat: int = 64, num_block: int = 16,
                 use_bn: bool = True, global_residual: bool = False, kernels: str = "torch"):
        super().__init__()
        self.arch_args = dict(in_ch=in_ch, out_ch=out_ch, scale=scale, num_feat=num_feat, num_block=num_block,
                              use_bn=use_bn, global_residual=global_residual)
        self.scale, self.global_residual, self.kernels = scale, global_residual, check_kernels(kernels)
        self.conv_first = nn.Conv2d(in_ch, num_feat, 9, padding=4)
        self.prelu_first = nn.PReLU(num_feat)
        self.body = nn.Sequential(*(SRResBlock(num_feat, use_bn, kernels) for _ in range(num_block)))
        self.conv_body = Conv3x3(num_feat, num_feat, kernels, bias=not use_bn)
        self.bn_body = nn.BatchNorm2d(num_feat) if use_bn else None
        self.upsample = nn.Sequential(*(ShuffleUp(num_feat, f, kernels, prelu=True) for f in upsample_steps(scale)))
        self.conv_last = nn.Conv2d(num_feat, out_ch, 9, padding=4)
        init_generator(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = ops.prelu(self.conv_first(x), self.prelu_first.weight)  # (B, F, H, W)
        y = self.body(feat)
        y = self.conv_body(y, residual=feat) if self.bn_body is None else feat + self.bn_body(self.conv_body(y))
        out = self.conv_last(self.upsample(y))  # (B, out_ch, sH, sW)
        return out + bicubic_up(x, self.scale) if self.global_residual else out


class EDSR(nn.Module):
    """EDSR (Lim et al. 2017); num_feat=64, num_block=16, res_scale=1 is EDSR-baseline.

    x: (B, in_ch, H, W) in [0, 1] -> (B, out_ch, sH, sW). The trunk sees mean-subtracted input (EDSR's
    MeanShift); the mean is added back to the output unless global_residual adds MATLAB bicubic(x) instead.
    """
    name = "edsr"

    def __init__(self, in_ch: int = 3, out_ch: int = 3, scale: int = 4, num_feat: int = 64, num_block: int = 16,
                 res_scale: float = 1.0, global_residual: bool = False, kernels: str = "torch"):
        super().__init__()
        self.arch_args = dict(in_ch=in_ch, out_ch=out_ch, scale=scale, num_feat=num_feat, num_block=num_block,
                              res_scale=res_scale, global_residual=global_residual)
        self.scale, self.global_residual, self.kernels = scale, global_residual, check_kernels(kernels)
        # Fixed constants, not weights: kept out of the state dict.
        self.register_buffer("in_mean", channel_mean(in_ch), persistent=False)
        self.register_buffer("out_mean", channel_mean(out_ch), persistent=False)
        self.conv_first = Conv3x3(in_ch, num_feat, kernels)
        self.body = nn.Sequential(*(EDSRBlock(num_feat, res_scale, kernels) for _ in range(num_block)))
        self.conv_body = Conv3x3(num_feat, num_feat, kernels)
        self.upsample = nn.Sequential(*(ShuffleUp(num_feat, f, kernels, prelu=False) for f in upsample_steps(scale)))
        self.conv_last = Conv3x3(num_feat, out_ch, kernels)
        init_generator(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x - self.in_mean)  # (B, F, H, W)
        y = self.conv_body(self.body(feat), residual=feat)
        out = self.conv_last(self.upsample(y))  # (B, out_ch, sH, sW)
        return out + (bicubic_up(x, self.scale) if self.global_residual else self.out_mean)


class ResidualDenseBlock(nn.Module):
    """ESRGAN's RDB: 5 densely connected convs, x + 0.2 * conv5(...). x: (B, F, H, W) -> (B, F, H, W)."""

    def __init__(self, num_feat: int, num_grow_ch: int, kernels: str):
        super().__init__()
        # conv_i sees x and the i-1 earlier outputs; BasicSR's names conv1..conv5 keep ESRGAN keys mappable.
        for i in range(5):
            out = num_grow_ch if i < 4 else num_feat
            setattr(self, f"conv{i + 1}", Conv3x3(num_feat + i * num_grow_ch, out, kernels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i in range(1, 5):
            conv = getattr(self, f"conv{i}")
            feats.append(conv(torch.cat(feats, 1), act="leaky_relu", negative_slope=0.2))  # (B, G, H, W)
        # Residual scaling by 0.2 (ESRGAN) keeps the 69-RDB trunk stable without BN.
        return self.conv5(torch.cat(feats, 1), residual=x, scale=0.2)


class RRDB(nn.Module):
    """Residual-in-residual dense block: x + 0.2 * rdb3(rdb2(rdb1(x))). x: (B, F, H, W)."""

    def __init__(self, num_feat: int, num_grow_ch: int, kernels: str):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch, kernels)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch, kernels)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch, kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.add(x, self.rdb3(self.rdb2(self.rdb1(x))), alpha=0.2)  # x + 0.2 * rdb3(...), one pass


class RRDBNet(nn.Module):
    """ESRGAN's generator (Wang et al. 2018) in BasicSR's layout; nearest-neighbour upsampling + conv.

    x: (B, in_ch, H, W) in [0, 1] -> (B, out_ch, sH, sW). global_residual adds MATLAB bicubic(x).
    """
    name = "rrdb"

    def __init__(self, in_ch: int = 3, out_ch: int = 3, scale: int = 4, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32, global_residual: bool = False, kernels: str = "torch"):
        super().__init__()
        self.arch_args = dict(in_ch=in_ch, out_ch=out_ch, scale=scale, num_feat=num_feat, num_block=num_block,
                              num_grow_ch=num_grow_ch, global_residual=global_residual)
        self.scale, self.global_residual, self.kernels = scale, global_residual, check_kernels(kernels)
        self.steps = upsample_steps(scale)
        self.conv_first = Conv3x3(in_ch, num_feat, kernels)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch, kernels) for _ in range(num_block)))
        self.conv_body = Conv3x3(num_feat, num_feat, kernels)
        for i in range(len(self.steps)):  # conv_up1 (x2, x3), conv_up2 (x4)
            setattr(self, f"conv_up{i + 1}", Conv3x3(num_feat, num_feat, kernels))
        self.conv_hr = Conv3x3(num_feat, num_feat, kernels)
        self.conv_last = Conv3x3(num_feat, out_ch, kernels)
        init_generator(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)  # (B, F, H, W)
        feat = self.conv_body(self.body(feat), residual=feat)
        for i, factor in enumerate(self.steps):
            up = F.interpolate(feat, scale_factor=factor, mode="nearest")
            feat = getattr(self, f"conv_up{i + 1}")(up, act="leaky_relu", negative_slope=0.2)
        out = self.conv_last(self.conv_hr(feat, act="leaky_relu", negative_slope=0.2))  # (B, out_ch, sH, sW)
        return out + bicubic_up(x, self.scale) if self.global_residual else out


GENERATORS: dict[str, type[nn.Module]] = {"srresnet": SRResNet, "edsr": EDSR, "rrdb": RRDBNet, "srcnn": SRCNN,
                                           "vdsr": VDSR, "mdsr": MDSR}


def build_generator(name: str, **kwargs) -> nn.Module:
    """GENERATORS[name](**kwargs); an unknown name is a ValueError listing the valid ones."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; valid: {', '.join(GENERATORS)}")
    return GENERATORS[name](**kwargs)
