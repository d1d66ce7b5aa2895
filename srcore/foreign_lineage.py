"""Foreign weights of the lineage's networks: detection keys and conversions onto srcore's SRCNN, VDSR and MDSR.

LINEAGE_LAYOUTS has the shape of srcore.weights.LAYOUTS (name -> (keys that identify the layout, spec
function)), for srcore.weights to take into its table; each spec function maps a flat state dict to
(GENERATORS name, constructor arguments, weights in srcore's names). The public layouts:

    srcnn-yjn870      yjn870/SRCNN-pytorch: conv1, conv2, conv3 (9-5-5, 64/32, Y; also its RGB num_channels=3)
    srcnn-lornatang   Lornatang/SRCNN-PyTorch: features.0, map.0, reconstruction (9-1-5 or 9-5-5, Y)
    vdsr-twtygqyy     twtygqyy/pytorch-vdsr: input, residual_layer.N.conv, output (no biases, Y)
    vdsr-lornatang    Lornatang/VDSR-PyTorch: conv1.0, trunk.N.conv, conv2 (no biases, Y)
    mdsr-edsr-pytorch EDSR-PyTorch's mdsr.py: sub_mean, head.0, pre_process.I.J.body.K, body.N.body.K, upsample.I,
                      tail.0, add_mean (the mdsr_baseline / mdsr releases)

All four SRCNN/VDSR ports feed the network MATLAB-style Y / 255 of the bicubic-upscaled image, as srcore's Y
path does, and their layers keep the size (zero padding), so a port's network is srcore's layer for layer.
Their weights hold no scale (the bicubic input carries it): the converted model is offered at x2, x3 and x4,
x4 by default (`srcore.multiscale.select_scale` or `--scale` picks another); a port trained for one scale
still upscales the others, as VDSR's paper shows, less well. twtygqyy's released model_epoch_50.pth pickles
the whole nn.Module and cannot be read with weights_only=True: save its `.state_dict()` first. MDSR's scales
come from its upsamplers (one conv of 4F channels: x2, 9F: x3, two of 4F: x4); its pixel range from its
MeanShift, as for EDSR-PyTorch's EDSR (srcore.weights.mean_shift_range): biases are divided by it.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch

Weights = dict[str, torch.Tensor]
Spec = tuple[str, dict[str, Any], Weights]
PRE_UPSAMPLING_SCALES = (2, 3, 4)  # what a pre-upsampling port is offered at; its weights do not say
SHUFFLE_SCALE = {(4,): 2, (9,): 3, (4, 4): 4}  # MDSR upsampler: channel ratio of each conv -> scale


def block_indices(weights: Weights, prefix: str) -> list[int]:
    """Sorted distinct N of keys `prefix`N.... ."""
    return sorted({int(m.group(1)) for key in weights if (m := re.match(re.escape(prefix) + r"(\d+)\.", key))})


def renamed(weights: Weights, layers: dict[str, str]) -> Weights:
    """`weights` with each layer's prefix replaced: layers maps the port's layer name to srcore's; a tensor of
    another layer is a ValueError naming it."""
    out = {}
    for key, value in weights.items():
        layer, _, kind = key.rpartition(".")
        if layer not in layers:
            raise ValueError(f"unexpected tensor {key}: the layout has only the layers {', '.join(layers)}")
        out[f"{layers[layer]}.{kind}"] = value
    return out


def colour_of(channels: int, layer: str) -> str:
    if channels not in (1, 3):
        raise ValueError(f"{layer} takes {channels} channels; srcore's SRCNN and VDSR take 1 (Y) or 3 (RGB)")
    return "y" if channels == 1 else "rgb"


def srcnn_spec(weights: Weights, first: str, mapping: str, last: str) -> Spec:
    """srcore's srcnn from the three conv layers named first, mapping and last in `weights`."""
    w1, w2, w3 = (weights[f"{name}.weight"] for name in (first, mapping, last))
    if w2.shape[0] * 2 != w1.shape[0]:
        raise ValueError(f"{mapping} has {w2.shape[0]} filters for {w1.shape[0]} in {first}; srcore's SRCNN "
                         f"halves the width (the paper's 64/32)")
    args = dict(colour=colour_of(w1.shape[1], first), scale=4, scales=PRE_UPSAMPLING_SCALES,
                sizes=(w1.shape[-1], w2.shape[-1], w3.shape[-1]), num_feat=w1.shape[0], global_residual=False)
    return "srcnn", args, renamed(weights, {first: "conv_first", mapping: "conv_map", last: "conv_last"})


def vdsr_spec(weights: Weights, first: str, body: str, body_conv: str, last: str) -> Spec:
    """srcore's vdsr from `first`, the convs `body`N`body_conv` (N = 0, 1, ...) and `last`."""
    indices = block_indices(weights, body)
    if indices != list(range(len(indices))):
        raise ValueError(f"{body}N layers are numbered {indices}, expected 0..{len(indices) - 1}")
    w1 = weights[f"{first}.weight"]
    args = dict(colour=colour_of(w1.shape[1], first), scale=4, scales=PRE_UPSAMPLING_SCALES, num_feat=w1.shape[0],
                num_layers=len(indices) + 2, bias=f"{first}.bias" in weights, global_residual=True)
    layers = {first: "conv_first", **{f"{body}{i}{body_conv}": f"body.{i}" for i in indices}, last: "conv_last"}
    return "vdsr", args, renamed(weights, layers)


def mdsr_scales(weights: Weights, feat: int) -> dict[int, int]:
    """EDSR-PyTorch MDSR's upsampler index -> the scale it makes, read off its convs' output channels."""
    scales = {}
    for index in block_indices(weights, "upsample."):
        convs = block_indices(weights, f"upsample.{index}.")
        ratios = tuple(weights[f"upsample.{index}.{k}.weight"].shape[0] // feat for k in convs)
        if ratios not in SHUFFLE_SCALE:
            raise ValueError(f"upsample.{index} has convs of {ratios} x {feat} channels: not x2 (4,), x3 (9,) "
                             f"or x4 (4, 4)")
        scales[index] = SHUFFLE_SCALE[ratios]
    if len(set(scales.values())) != len(scales):
        raise ValueError(f"upsamplers make scales {list(scales.values())}: each scale once")
    return scales


def mdsr_key(key: str, scales: dict[int, int], num_block: int) -> str:
    """One EDSR-PyTorch MDSR key in srcore's names (see mdsr_spec)."""
    rules: list[tuple[str, Callable[[re.Match], str]]] = [
        (r"head\.0\.", lambda m: "conv_first."),
        (r"pre_process\.(\d+)\.(\d+)\.body\.([02])\.",
         lambda m: f"pre.x{scales[int(m[1])]}.{m[2]}.conv{1 + int(m[3]) // 2}."),
        (rf"body\.{num_block}\.", lambda m: "conv_body."),
        (r"body\.(\d+)\.body\.([02])\.", lambda m: f"body.{m[1]}.conv{1 + int(m[2]) // 2}."),
        (r"upsample\.(\d+)\.(\d+)\.", lambda m: f"upsample.x{scales[int(m[1])]}.{int(m[2]) // 2}.conv."),
        (r"tail\.0\.", lambda m: "conv_last.")]
    for pattern, name in rules:
        if (m := re.match(pattern, key)):
            return name(m) + key[m.end():]
    raise ValueError(f"unexpected tensor {key} in EDSR-PyTorch MDSR weights")


def mdsr_spec(weights: Weights) -> Spec:
    """srcore's mdsr from EDSR-PyTorch's mdsr.py weights (res_scale 1, its only setting)."""
    from srcore.weights import mean_shift_range  # here, not at the top: srcore.weights imports this module

    value_range = mean_shift_range(weights)
    first = weights["head.0.weight"]
    feat = first.shape[0]
    scales = mdsr_scales(weights, feat)
    num_block = len(block_indices({k: v for k, v in weights.items() if ".body." in k}, "body."))
    args = dict(in_ch=first.shape[1], out_ch=weights["tail.0.weight"].shape[0], scale=max(scales.values()),
                scales=tuple(sorted(scales.values())), num_feat=feat, num_block=num_block, res_scale=1.0,
                global_residual=False)
    kept = {k: v for k, v in weights.items() if not k.startswith(("sub_mean.", "add_mean."))}
    return "mdsr", args, {mdsr_key(k, scales, num_block): v / value_range if k.endswith(".bias") else v
                          for k, v in kept.items()}


def spec_of(fn: Callable[..., Spec], *names: str) -> Callable[[Weights], Spec]:
    return lambda weights: fn(weights, *names)


LINEAGE_LAYOUTS: dict[str, tuple[tuple[str, ...], Callable[[Weights], Spec]]] = {
    "srcnn-yjn870": (("conv1.weight", "conv2.weight", "conv3.weight", "conv3.bias"),
                     spec_of(srcnn_spec, "conv1", "conv2", "conv3")),
    "srcnn-lornatang": (("features.0.weight", "map.0.weight", "reconstruction.weight"),
                        spec_of(srcnn_spec, "features.0", "map.0", "reconstruction")),
    "vdsr-twtygqyy": (("input.weight", "residual_layer.0.conv.weight", "output.weight"),
                      spec_of(vdsr_spec, "input", "residual_layer.", ".conv", "output")),
    "vdsr-lornatang": (("conv1.0.weight", "trunk.0.conv.weight", "conv2.weight"),
                       spec_of(vdsr_spec, "conv1.0", "trunk.", ".conv", "conv2")),
    "mdsr-edsr-pytorch": (("sub_mean.weight", "head.0.weight", "pre_process.0.0.body.0.weight",
                           "body.0.body.0.weight", "upsample.0.0.weight", "tail.0.weight", "add_mean.weight"),
                          mdsr_spec),
}
