"""SRGAN's VGG-style discriminator, built by name from `DISCRIMINATORS`.

The conv trunk is the paper's (Ledig et al. 2017, fig. 4): eight 3x3 convs, 64 -> 512 channels, every
second one stride 2, each followed by BN (not the first) and LeakyReLU(0.2). The paper then flattens a
fixed 6x6 grid (96-pixel patches) into its dense layer, as BasicSR flattens 4x4 (128-pixel patches only);
here an adaptive average pool to a fixed `pool_size` grid comes first, so any patch size is accepted.
Like the generators in srcore.models, the discriminator carries `name` and `arch_args`:
`build_discriminator(d.name, **d.arch_args)` rebuilds it, e.g. from a checkpoint.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm as add_spectral_norm

# (channel multiplier of num_feat, stride) of the seven convs after the first (64 channels, stride 1).
TRUNK = ((1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (8, 1), (8, 2))
LEAKY_SLOPE = 0.2


def conv_block(in_ch: int, out_ch: int, stride: int, use_bn: bool, spectral_norm: bool) -> nn.Sequential:
    """conv3x3 (stride 1 or 2, padding 1) [+ BN] + LeakyReLU(0.2): (B, in_ch, H, W) -> (B, out_ch, H/s, W/s).

    Odd sizes round up: a stride-2 conv maps 5 pixels to 3.
    """
    # A conv bias right before BN is cancelled by its mean subtraction.
    conv = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=not use_bn)
    layers = [add_spectral_norm(conv) if spectral_norm else conv]
    if use_bn:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.LeakyReLU(LEAKY_SLOPE))
    return nn.Sequential(*layers)


class VGGDiscriminator(nn.Module):
    """SRGAN's discriminator; spectral_norm=True swaps BN for spectral norm on every conv and dense layer.

    x: (B, in_ch, H, W) in [0, 1], any H, W >= 1 -> (B,) raw logits (no sigmoid).
    After the four stride-2 convs the grid is ceil(H/16) x ceil(W/16); it is average-pooled to
    pool_size x pool_size before the dense layers. 4x4 keeps a coarse layout of the patch (a global
    pool, 1x1, would judge it as a bag of features) while only averaging, never repeating, cells for
    every patch of 64 pixels or more; it is also BasicSR's grid for its 128-pixel patches.
    """
    name = "vgg"

    def __init__(self, in_ch: int = 3, num_feat: int = 64, spectral_norm: bool = False, pool_size: int = 4,
                 num_dense: int = 1024):
        super().__init__()
        for key, value in (("num_feat", num_feat), ("pool_size", pool_size), ("num_dense", num_dense)):
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"discriminator {key} must be a positive int, got {value!r}")
        self.arch_args = dict(in_ch=in_ch, num_feat=num_feat, spectral_norm=spectral_norm, pool_size=pool_size,
                              num_dense=num_dense)
        use_bn = not spectral_norm  # spectral norm already bounds each layer; BN on top only adds noise
        blocks = [conv_block(in_ch, num_feat, 1, use_bn=False, spectral_norm=spectral_norm)]
        channels = num_feat
        for mult, stride in TRUNK:
            blocks.append(conv_block(channels, num_feat * mult, stride, use_bn, spectral_norm))
            channels = num_feat * mult
        self.body = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        dense1 = nn.Linear(channels * pool_size**2, num_dense)
        dense2 = nn.Linear(num_dense, 1)
        if spectral_norm:
            dense1, dense2 = add_spectral_norm(dense1), add_spectral_norm(dense2)
        self.head = nn.Sequential(dense1, nn.LeakyReLU(LEAKY_SLOPE), dense2)

    def forward(self, x: torch.Tensor, return_features: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """x: (B, in_ch, H, W) -> logits (B,), or (logits, features) with return_features=True.

        features: the eight conv blocks' outputs after their LeakyReLU, shallow to deep, each
        (B, C_i, H_i, W_i); they feed `srcore.losses.feature_matching_loss`. One pass gives both, so
        BN's running statistics see each batch once.
        """
        if x.dim() != 4:
            raise ValueError(f"discriminator input must be (B, C, H, W), got shape {tuple(x.shape)}")
        features = []
        feat = x
        for block in self.body:
            feat = block(feat)  # (B, C_i, H_i, W_i)
            features.append(feat)
        pooled = self.pool(feat).flatten(1)  # (B, 8F * pool_size^2)
        logits = self.head(pooled).squeeze(1)  # (B,)
        return (logits, features) if return_features else logits


DISCRIMINATORS: dict[str, type[nn.Module]] = {"vgg": VGGDiscriminator}


def build_discriminator(name: str, **kwargs) -> nn.Module:
    """DISCRIMINATORS[name](**kwargs); an unknown name is a ValueError listing the valid ones."""
    if name not in DISCRIMINATORS:
        raise ValueError(f"unknown discriminator {name!r}; valid: {', '.join(DISCRIMINATORS)}")
    return DISCRIMINATORS[name](**kwargs)
