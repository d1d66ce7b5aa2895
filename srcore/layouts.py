"""srcore generators in the layouts other tools load: BasicSR's and the original ESRGAN's (the reverse of
srcore.weights, which reads them).

    basicsr  BasicSR 1.4.2: {"params": weights} as its models save them, and "params_ema" beside it when the
             source holds both sets (BasicSR's test configs read params_ema, spandrel prefers it,
             `load_network`'s default reads params), in its architectures' names and pixel ranges:
               rrdb -> RRDBNet (basicsr/archs/rrdbnet_arch.py): the same names, pixels in [0, 1]
               edsr -> EDSR (edsr_arch.py): conv_body -> conv_after_body, upsample.k.conv -> upsample.{2k},
                       every bias x 255: BasicSR's EDSR runs on (x - mean) * img_range with img_range 255
    esrgan   ESRGAN's RRDBNet_arch.py state dict: RRDB_trunk.N.RDBk.convI, trunk_conv, upconv1, upconv2,
             HRconv, conv_last (pixels in [0, 1])

What has no counterpart is refused, naming why: the bicubic global residual (neither tool adds one),
srcore's SRResNet (BN and PReLU; BasicSR's MSRResNet is another network), an RRDBNet at another scale
than x4 (both tools' RRDBNet upsample x4; BasicSR's x2 variant pixel-unshuffles its input first), and an
EDSR that is not RGB to RGB (BasicSR's EDSR subtracts an RGB mean).
"""
from __future__ import annotations

import re
from typing import Any

from srcore.models import DIV2K_RGB_MEAN
from srcore.weights import Weights, rename

LAYOUTS = ("srcore", "basicsr", "esrgan")
EDSR_RANGE = 255.0  # BasicSR's img_range for EDSR
ESRGAN_NAMES = [(r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2."), (r"^conv_body\.", "trunk_conv."),
                (r"^conv_up(\d)\.", r"upconv\1."), (r"^conv_hr\.", "HRconv.")]


def refusal(arch: str, arch_args: dict[str, Any], layout: str) -> str | None:
    """Why `arch`(**arch_args) cannot be written in `layout`, or None when it can."""
    if layout == "srcore":
        return None
    if arch_args.get("global_residual"):
        return (f"its output adds a MATLAB-bicubic upscale of the input (global_residual), which {layout}'s "
                f"networks do not; export it as srcore .safetensors or ONNX instead")
    wanted = {"basicsr": ("rrdb", "edsr"), "esrgan": ("rrdb",)}[layout]
    if arch not in wanted:
        note = "; srcore's SRResNet (BN, PReLU) is not BasicSR's MSRResNet" if arch == "srresnet" else ""
        return f"the {layout} layout holds {' and '.join(wanted)} networks only{note}"
    if arch == "rrdb" and arch_args["scale"] != 4:
        return (f"it is a x{arch_args['scale']} RRDBNet; {layout}'s RRDBNet upsamples x4 (BasicSR's x2 and x1 "
                f"variants pixel-unshuffle the input first, which srcore's does not)")
    if arch == "edsr" and (arch_args["in_ch"], arch_args["out_ch"]) != (3, 3):
        return (f"BasicSR's EDSR subtracts an RGB mean; this EDSR maps {arch_args['in_ch']} to "
                f"{arch_args['out_ch']} channels")
    return None


def edsr_to_basicsr(weights: Weights) -> Weights:
    """srcore EDSR names and [0, 1] biases -> BasicSR's names and its [0, 255] biases."""
    out = {}
    for key, value in weights.items():
        key = key.replace("conv_body.", "conv_after_body.", 1) if key.startswith("conv_body.") else key
        if match := re.match(r"^upsample\.(\d+)\.conv\.(.*)$", key):  # [conv, PixelShuffle] per step
            key = f"upsample.{2 * int(match.group(1))}.{match.group(2)}"
        out[key] = value * EDSR_RANGE if key.endswith(".bias") else value
    return out


def convert(arch: str, weights: Weights, layout: str) -> Weights:
    """One set of srcore weights in `layout`'s names and ranges (check `refusal` first)."""
    if layout == "srcore" or (layout == "basicsr" and arch == "rrdb"):
        return dict(weights)
    if layout == "basicsr":
        return edsr_to_basicsr(weights)
    return rename(weights, ESRGAN_NAMES)


def layout_state(arch: str, arch_args: dict[str, Any], weights: Weights, layout: str,
                 both: dict[str, Weights] | None = None) -> dict[str, Any]:
    """What a .pth in `layout` holds: basicsr {"params": weights} or, when the source holds both sets
    (both = {"raw": ..., "ema": ...}), {"params": raw, "params_ema": ema}; esrgan the bare `weights`.
    A ValueError says why when the model has no counterpart in `layout`."""
    reason = refusal(arch, arch_args, layout)
    if reason:
        raise ValueError(f"cannot write a {arch} {arch_args} in the {layout} layout: {reason}")
    if layout == "basicsr":
        sets = {"params": both["raw"], "params_ema": both["ema"]} if both else {"params": weights}
        return {key: contiguous(convert(arch, value, layout)) for key, value in sets.items()}
    return contiguous(convert(arch, weights, layout))


def contiguous(weights: Weights) -> Weights:
    return {key: value.detach().cpu().contiguous() for key, value in weights.items()}


def basicsr_options(arch: str, arch_args: dict[str, Any]) -> str:
    """The `network_g` entry of a BasicSR options file that builds the network the basicsr layout holds."""
    a = arch_args
    if arch == "rrdb":
        return (f"network_g: {{type: RRDBNet, num_in_ch: {a['in_ch']}, num_out_ch: {a['out_ch']}, scale: 4, "
                f"num_feat: {a['num_feat']}, num_block: {a['num_block']}, num_grow_ch: {a['num_grow_ch']}}}")
    mean = ", ".join(f"{m}" for m in DIV2K_RGB_MEAN)
    return (f"network_g: {{type: EDSR, num_in_ch: 3, num_out_ch: 3, num_feat: {a['num_feat']}, "
            f"num_block: {a['num_block']}, upscale: {a['scale']}, res_scale: {a['res_scale']}, img_range: 255., "
            f"rgb_mean: [{mean}]}}")
