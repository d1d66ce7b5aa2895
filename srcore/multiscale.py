"""One model, several scales: what MDSR, VDSR and SRCNN share, and how callers pick a scale.

A multi-scale generator has arch_args `scales` (every scale it upscales at) and `scale` (the default one), and
its forward takes `scale=` (None: the default). Everything that calls `model(x)` (evaluation, tiled inference,
validation, the GAN stage) therefore runs the default scale; `select_scale(model, s)` gives the same model
with default s, sharing its weights, for `srcore upscale --scale S` and for scoring every scale. A
single-scale generator has only `scale`; select_scale accepts that one.

Training batches carry their scale in their shapes (hr is s x lq), so mixed-scale data needs no new field:
`batch_scale(lq, hr)`.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from srcore.blocks import upsample_steps


def check_scales(scale: int, scales: Sequence[int] | None, name: str) -> tuple[int, ...]:
    """A model's scales, sorted (None: just `scale`); each must be 2, 3 or 4 and `scale` one of them.
    `name` (the generator) starts the error message."""
    scales = (scale,) if scales is None else tuple(sorted({int(s) for s in scales}))
    for s in (scale, *scales):
        upsample_steps(s)  # the same check and message as every generator's scale
    if scale not in scales:
        raise ValueError(f"{name}: the default scale {scale} must be one of its scales {list(scales)}")
    return scales


def pick_scale(model: nn.Module, scale: int | None) -> int:
    """The scale a multi-scale model's forward runs at: `scale`, or its default when None."""
    if scale is None:
        return model.scale
    if scale not in model.scales:
        raise ValueError(f"{model.name} upscales x{', x'.join(map(str, model.scales))}; asked for x{scale}")
    return scale


def model_scales(model: nn.Module) -> tuple[int, ...]:
    """Every scale `model` upscales at, from its arch_args (a single-scale generator: its one scale)."""
    args = model.arch_args
    return tuple(args.get("scales") or (args["scale"],))


def takes_scale(model: nn.Module) -> bool:
    """Does model's forward take `scale=` (a multi-scale generator)?"""
    return "scales" in model.arch_args


def select_scale(model: nn.Module, scale: int) -> nn.Module:
    """`model` upscaling x`scale` when called as model(x): the model itself when that is its default, else a
    shallow copy sharing every weight, whose default scale (and arch_args scale) is `scale`. A ValueError
    names the scales the model has."""
    scales = model_scales(model)
    if scale not in scales:
        raise ValueError(f"this {model.name} model upscales x{', x'.join(map(str, scales))}; asked for x{scale}")
    if scale == model.arch_args["scale"]:
        return model
    view = copy.copy(model)  # same submodules and parameters, own attribute dict
    view.scale = scale
    view.arch_args = {**model.arch_args, "scale": scale}
    return view


def batch_scale(lq: torch.Tensor, hr: torch.Tensor) -> int:
    """The scale of a training batch: lq (B, C, h, w), hr (B, C, s*h, s*w) -> s."""
    (h, w), (big_h, big_w) = lq.shape[-2:], hr.shape[-2:]
    if big_h % h or big_w % w or big_h // h != big_w // w:
        raise ValueError(f"a training batch needs hr = s x lq in both dimensions, got lq {tuple(lq.shape)} "
                         f"and hr {tuple(hr.shape)}")
    return big_h // h
