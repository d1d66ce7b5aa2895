"""One entry point for every weights file a user may hold: `load_generator(path)`.

Read safely (torch.load(weights_only=True) or safetensors, never unpickling code), then recognised by key
layout and mapped onto srcore's generators (srcore.models), with the architecture read off the tensors:

    srcore        a checkpoint (arch, arch_args, model[, ema]) or an exported .safetensors with that metadata
    esrgan        ESRGAN's RRDBNet_arch.py: conv_first, RRDB_trunk.N.RDB1.conv1, trunk_conv, upconv1, HRconv
    esrgan-seq    ESRGAN's first release (architecture.py): model.0, model.1.sub.N.RDB1.conv1.0, model.3...
    basicsr-rrdb  BasicSR's RRDBNet: conv_first, body.N.rdb1.conv1, conv_body, conv_up1, conv_hr (= srcore's)
    basicsr-edsr  BasicSR's EDSR: conv_first, body.N.conv1, conv_after_body, upsample.0, conv_last
    edsr-pytorch  EDSR-PyTorch (sanghyun-son): sub_mean, head.0, body.N.body.0, tail.0.0, tail.1, add_mean
    srcnn-*, vdsr-*, mdsr-edsr-pytorch   the common SRCNN and VDSR ports and EDSR-PyTorch's MDSR
                  (srcore.foreign_lineage)

A file holding two sets of weights, a training checkpoint's `model` and `ema` or BasicSR's `params` and
`params_ema`, is read by the explicit choice `weights="ema"` (the default, what srcore's training outputs)
or `"raw"`; Spec.choice records which was taken. Peers differ here: spandrel and BasicSR's default
`param_key` read an srcore checkpoint's raw `model`, so to hand a checkpoint to them export it
(srcore.layouts). A DataParallel 'module.' prefix is dropped. Files that are clearly not weights (images,
ONNX graphs) are named as what they are rather than failing inside torch.load.

Both EDSRs run on pixel values in [0, 255] (EDSR-PyTorch's rgb_range, read off sub_mean's bias; BasicSR's
img_range, 255 in all its EDSR configs, not stored): every layer is linear or ReLU, so f(255 z) / 255 is the
same network with all biases divided by 255, which is what srcore's EDSR (on [0, 1]) gets. The DIV2K mean
both subtract is srcore's EDSR mean. EDSR's res_scale is not in its weights: 0.1 is assumed for the
256-feature EDSR (the only configuration either repository trains with another value), 1 otherwise.
RRDBNet's scale comes from its count of upsampling convs (one: x2, two: x4); BasicSR's pixel-unshuffled
x1/x2 RRDBNet has no srcore counterpart and is refused.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open
from torch import nn

from srcore.checkpoint import check_checkpoint, rebuild_generator
from srcore.files import safe_load
from srcore.foreign_lineage import LINEAGE_LAYOUTS
from srcore.models import DIV2K_RGB_MEAN

Weights = dict[str, torch.Tensor]
EDSR_RANGE = 255.0  # BasicSR's img_range for EDSR (not stored in its files)


WEIGHT_SETS = ("ema", "raw")
SET_KEYS = {"srcore": {"ema": "ema", "raw": "model"}, "basicsr": {"ema": "params_ema", "raw": "params"}}
# What a file that is not weights starts with, and what to call it.
NOT_WEIGHTS = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
               (b"BM", "a BMP image"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"))


@dataclass(frozen=True)
class Spec:
    """What to build: GENERATORS name, constructor arguments, weights in srcore's names, the layout read.

    choice: "ema" or "raw" when the file held both sets (`sets` then holds both, in srcore's names), else
    None. card: the model card stored with srcore's own files (srcore.modelcard), else None.
    """
    arch: str
    arch_args: dict[str, Any]
    weights: Weights
    layout: str
    choice: str | None = None
    sets: dict[str, Weights] | None = None
    card: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None  # an srcore checkpoint's step and interpolation record, when present


def load_generator(path: str | Path, kernels: str = "torch", *, weights: str = "ema",
                   expect_scale: int | None = None) -> nn.Module:
    """The generator a weights file describes, in eval mode, from any layout in this module's docstring:
    the one way srcore loads a generator (stages, CLI, tests).
    weights: which set of a file holding two ("ema" or "raw", see the module docstring).

    Raises FileNotFoundError for a missing file, ValueError naming the file for anything unreadable,
    unrecognised, of another scale than `expect_scale`, or whose tensors do not fit the architecture they imply.
    """
    spec = read_spec(path, weights)
    scale = spec.arch_args.get("scale")
    if expect_scale is not None and scale != expect_scale:
        raise ValueError(f"{path} is a x{scale} model, expected x{expect_scale}")
    return rebuild_generator(spec.arch, spec.arch_args, spec.weights, f"{path} ({spec.layout} weights)", kernels)


def read_spec(path: str | Path, weights: str = "ema") -> Spec:
    """Read `path` safely and work out the generator it holds (see load_generator)."""
    if weights not in WEIGHT_SETS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_SETS)} (which set of a file holding two), "
                         f"got {weights!r}")
    path = Path(path)
    check_is_weights(path)
    state, metadata = read_safetensors(path) if path.suffix == ".safetensors" else (safe_load(path, "weights"), {})
    if "arch" in metadata:  # srcore's own export
        card = json.loads(metadata["card"]) if "card" in metadata else None
        return Spec(metadata["arch"], json.loads(metadata["arch_args"]), state, "srcore", card=card)
    if isinstance(state, dict) and {"arch", "arch_args", "model"} <= state.keys():  # srcore checkpoint
        check_checkpoint(state, path)
        chosen, choice, sets = pick_set(state, "srcore", weights)
        extra = {key: state[key] for key in ("step", "interpolation") if key in state}
        return Spec(state["arch"], state["arch_args"], chosen, "srcore", choice, sets, state.get("card"), extra)
    chosen, choice, sets = pick_set(state, "basicsr", weights) if isinstance(state, dict) else (state, None, None)
    name, convert = detect_layout(unwrap(chosen, path), path)
    mapped = {key: convert_weights(convert, unwrap(value, path), name, path)[2] for key, value in (sets or {}).items()}
    arch, arch_args, converted = convert_weights(convert, unwrap(chosen, path), name, path)
    return Spec(arch, arch_args, converted, name, choice, mapped or None)


def pick_set(state: dict[str, Any], kind: str, weights: str) -> tuple[Any, str | None, dict[str, Any] | None]:
    """The `weights` set of a file holding both (with the choice and both sets), else the file's only set.
    An srcore checkpoint always has its raw `model`; a BasicSR file may hold either key alone."""
    keys = SET_KEYS[kind]
    present = {name: state[key] for name, key in keys.items() if isinstance(state.get(key), dict)}
    if len(present) == 2:
        return present[weights], weights, present
    if kind == "srcore":
        return state["model"], None, None
    return (next(iter(present.values())) if present else state), None, None


def convert_weights(convert: SpecFn, weights: Weights, name: str, path: Path) -> tuple[str, dict[str, Any], Weights]:
    try:
        return convert(weights)
    except KeyError as error:
        raise ValueError(f"{path}: looks like {name} weights but has no tensor {error}") from error
    except ValueError as error:
        raise ValueError(f"{path}: {name} weights: {error}") from error


def check_is_weights(path: Path) -> None:
    """A ValueError naming what `path` is when it is plainly not a weights file (an image, an ONNX graph)."""
    if not path.is_file():
        raise FileNotFoundError(f"weights {path} does not exist")
    with open(path, "rb") as file:
        head = file.read(12)
    what = next((name for magic, name in NOT_WEIGHTS if head.startswith(magic)), None)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        what = "a WebP image"
    if what is None and path.suffix.lower() == ".onnx":
        what = "an ONNX graph (srcore runs PyTorch weights: give the file it was exported from)"
    if what is not None:
        raise ValueError(f"{path} is {what}, not model weights; srcore takes an srcore checkpoint (.pt) or "
                         f".safetensors, or ESRGAN/BasicSR/EDSR weights (.pth/.pt/.safetensors)")


def read_safetensors(path: Path) -> tuple[Weights, dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"weights {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as file:
            return {key: file.get_tensor(key) for key in file.keys()}, file.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise ValueError(f"weights {path} is not a readable .safetensors file: {error}") from error


def unwrap(state: Any, path: Path) -> Weights:
    """`state` checked to be a flat name -> tensor dict, without a DataParallel 'module.' prefix."""
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path}: expected a dict of tensors (a state dict, optionally under 'params' or "
                         f"'params_ema'), got {describe(state)}")
    if all(key.startswith("module.") for key in state):  # saved from DataParallel
        state = {key[len("module."):]: value for key, value in state.items()}
    return state


def describe(state: Any) -> str:
    if isinstance(state, dict):
        return f"a dict with keys {', '.join(map(str, list(state)[:8]))}{', ...' if len(state) > 8 else ''}"
    return f"a {type(state).__name__}"


Rule = tuple[str, str | Callable[[re.Match], str]]  # re.sub pattern and replacement


def rename(weights: Weights, rules: list[Rule]) -> Weights:
    """Apply the first matching (regex, replacement) of `rules` to every key; unmatched keys stay."""
    out = {}
    for key, value in weights.items():
        for pattern, replacement in rules:
            if re.match(pattern, key):
                key = re.sub(pattern, replacement, key)
                break
        out[key] = value
    return out


def count_blocks(weights: Weights, prefix: str) -> int:
    """How many distinct N there are in keys `prefix`N.... (block indices are 0..N-1)."""
    return len({int(m.group(1)) for key in weights if (m := re.match(re.escape(prefix) + r"(\d+)\.", key))})


def rrdb_spec(weights: Weights) -> tuple[str, dict[str, Any], Weights]:
    """srcore's rrdb (= BasicSR's RRDBNet names) with its arguments read off the tensors."""
    first, last = weights["conv_first.weight"], weights["conv_last.weight"]
    if first.shape[1] in (4 * last.shape[0], 16 * last.shape[0]):
        raise ValueError(f"conv_first takes {first.shape[1]} channels for {last.shape[0]} output channels: "
                         f"BasicSR's pixel-unshuffled x2/x1 RRDBNet, which srcore's rrdb does not implement "
                         f"(x2 and x4 RRDBNets without unshuffle load)")
    ups = sum(f"conv_up{i}.weight" in weights for i in (1, 2, 3))
    if ups not in (1, 2):
        raise ValueError(f"an RRDBNet has 1 (x2) or 2 (x4) upsampling convs conv_upN, found {ups}")
    args = dict(in_ch=first.shape[1], out_ch=last.shape[0], scale=2 ** ups, num_feat=first.shape[0],
                num_block=count_blocks(weights, "body."), num_grow_ch=weights["body.0.rdb1.conv1.weight"].shape[0],
                global_residual=False)
    return "rrdb", args, weights


ESRGAN_RULES = [(r"^RRDB_trunk\.(\d+)\.RDB(\d)\.", r"body.\1.rdb\2."), (r"^trunk_conv\.", "conv_body."),
                (r"^upconv(\d)\.", r"conv_up\1."), (r"^HRconv\.", "conv_hr.")]


def esrgan_spec(weights: Weights) -> tuple[str, dict[str, Any], Weights]:
    return rrdb_spec(rename(weights, ESRGAN_RULES))


def esrgan_seq_spec(weights: Weights) -> tuple[str, dict[str, Any], Weights]:
    """ESRGAN's first layout, one flat nn.Sequential: model.0 conv_first, model.1.sub.N RRDBs then the trunk
    conv at sub.<num_block>, then the upsampling convs, HR conv and last conv (the rest are activations
    and nearest upsampling, which hold no weights) in index order."""
    num_block = count_blocks({k: v for k, v in weights.items() if ".RDB" in k}, "model.1.sub.")
    rules: list[Rule] = [(r"^model\.0\.", "conv_first."),
                         (r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.", r"body.\1.rdb\2.conv\3."),
                         (rf"^model\.1\.sub\.{num_block}\.", "conv_body.")]
    indices = {int(m.group(1)) for key in weights if (m := re.match(r"model\.(\d+)\.", key))}
    tail = sorted(index for index in indices if index > 1)
    names = [f"conv_up{i + 1}" for i in range(len(tail) - 2)] + ["conv_hr", "conv_last"]
    rules += [(rf"^model\.{index}\.", f"{name}.") for index, name in zip(tail, names)]
    return rrdb_spec(rename(weights, rules))


def edsr_spec(weights: Weights, value_range: float) -> tuple[str, dict[str, Any], Weights]:
    """srcore's edsr from weights in its names, trained on [0, value_range] pixels: biases / value_range."""
    first, feat = weights["conv_first.weight"], weights["conv_first.weight"].shape[0]
    steps = [weights[f"upsample.{i}.conv.weight"].shape[0] // feat for i in range(count_blocks(weights, "upsample."))]
    scale = {(4,): 2, (9,): 3, (4, 4): 4}.get(tuple(steps))
    if scale is None:
        raise ValueError(f"EDSR upsampler with channel ratios {steps} is not x2 (4,), x3 (9,) or x4 (4, 4)")
    num_block = count_blocks(weights, "body.")
    args = dict(in_ch=first.shape[1], out_ch=weights["conv_last.weight"].shape[0], scale=scale, num_feat=feat,
                num_block=num_block, res_scale=0.1 if feat == 256 else 1.0, global_residual=False)
    return "edsr", args, {k: v / value_range if k.endswith(".bias") else v for k, v in weights.items()}


def shuffle_step(match: re.Match) -> str:
    """Upsampler Sequential index -> srcore step: [conv, PixelShuffle] per step, so conv 2k is step k."""
    return f"upsample.{int(match.group(1)) // 2}.conv."


BASICSR_EDSR_RULES: list[Rule] = [(r"^conv_after_body\.", "conv_body."), (r"^upsample\.(\d+)\.", shuffle_step)]


def basicsr_edsr_spec(weights: Weights) -> tuple[str, dict[str, Any], Weights]:
    return edsr_spec(rename(weights, BASICSR_EDSR_RULES), EDSR_RANGE)


def edsr_pytorch_spec(weights: Weights) -> tuple[str, dict[str, Any], Weights]:
    """EDSR-PyTorch: head/body/tail names, body.<num_block> is the trunk conv; MeanShift convs dropped after
    checking they shift by srcore's mean; their bias gives the rgb_range the network was trained on."""
    value_range = mean_shift_range(weights)
    num_block = count_blocks({k: v for k, v in weights.items() if ".body." in k}, "body.")
    rules: list[Rule] = [(r"^head\.0\.", "conv_first."), (r"^body\.(\d+)\.body\.0\.", r"body.\1.conv1."),
                         (r"^body\.(\d+)\.body\.2\.", r"body.\1.conv2."), (rf"^body\.{num_block}\.", "conv_body."),
                         (r"^tail\.0\.(\d+)\.", shuffle_step), (r"^tail\.1\.", "conv_last.")]
    kept = {k: v for k, v in weights.items() if not k.startswith(("sub_mean.", "add_mean."))}
    return edsr_spec(rename(kept, rules), value_range)


def mean_shift_range(weights: Weights) -> float:
    """rgb_range of EDSR-PyTorch's MeanShift pair (bias = -/+ rgb_range * mean / std, weight = I / std);
    a std other than 1 or a mean other than DIV2K's (srcore's EDSR constants) is a ValueError."""
    mean = torch.tensor(DIV2K_RGB_MEAN, dtype=torch.float64)
    ranges = []
    for name, sign in (("sub_mean", -1), ("add_mean", 1)):
        weight, bias = weights[f"{name}.weight"].double(), weights[f"{name}.bias"].double()
        if weight.shape != (3, 3, 1, 1) or not torch.allclose(weight.flatten(1), torch.eye(3, dtype=torch.float64)):
            raise ValueError(f"{name}.weight is not the identity (rgb_std != 1 or not RGB); srcore's EDSR only "
                             f"subtracts a mean")
        ratio = sign * bias / mean  # rgb_range, once per channel
        if not torch.allclose(ratio, ratio[0].expand(3), rtol=1e-3):
            raise ValueError(f"{name}.bias {bias.tolist()} is not a multiple of the DIV2K mean {DIV2K_RGB_MEAN}, "
                             f"the only mean srcore's EDSR subtracts")
        ranges.append(float(ratio[0]))
    if abs(ranges[0] - ranges[1]) > 1e-3 * ranges[0] or ranges[0] <= 0:
        raise ValueError(f"sub_mean and add_mean imply rgb_range {ranges[0]:g} and {ranges[1]:g}; they must agree")
    return ranges[0]


SpecFn = Callable[[Weights], tuple[str, dict[str, Any], Weights]]
LAYOUTS: dict[str, tuple[tuple[str, ...], SpecFn]] = {  # name -> (keys that identify it, how to map it)
    "esrgan": (("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight", "upconv1.weight",
                "HRconv.weight", "conv_last.weight"), esrgan_spec),
    "esrgan-seq": (("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"), esrgan_seq_spec),
    "basicsr-rrdb": (("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight", "conv_up1.weight",
                      "conv_hr.weight", "conv_last.weight"), rrdb_spec),
    "basicsr-edsr": (("conv_first.weight", "body.0.conv1.weight", "conv_after_body.weight", "upsample.0.weight",
                      "conv_last.weight"), basicsr_edsr_spec),
    "edsr-pytorch": (("sub_mean.weight", "head.0.weight", "body.0.body.0.weight", "tail.0.0.weight",
                      "tail.1.weight", "add_mean.weight"), edsr_pytorch_spec),
    **LINEAGE_LAYOUTS,  # SRCNN, VDSR and MDSR ports (srcore.foreign_lineage)
}


def detect_layout(weights: Weights, path: Path) -> tuple[str, SpecFn]:
    """The first LAYOUTS entry whose identifying keys are all in `weights`, or a ValueError listing them."""
    for name, (keys, spec_fn) in LAYOUTS.items():
        if all(key in weights for key in keys):
            return name, spec_fn
    expected = "; ".join(f"{name}: {', '.join(keys)}" for name, (keys, _) in LAYOUTS.items())
    raise ValueError(f"{path}: unrecognised weight layout ({describe(weights)}). Recognised layouts and the keys "
                     f"each needs: srcore: a checkpoint with arch, arch_args, model or a .safetensors with arch "
                     f"metadata; {expected}")
