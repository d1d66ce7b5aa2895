"""`srcore export` (a model for srcore, BasicSR, ESRGAN/spandrel or ONNX runtimes) and `srcore info` (what a
model file says about itself: its card, srcore.modelcard)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from srcore.checkpoint import rebuild_generator, save_checkpoint
from srcore.cli import CommandError
from srcore.cli_images import writable_folder
from srcore.export import export_onnx, export_safetensors, save_weights
from srcore.layouts import basicsr_options, layout_state, refusal
from srcore.modelcard import ONNX_CARD_KEY, card_from_text, describe_model, exported_card
from srcore.release import model_path
from srcore.weights import Spec, read_spec

SUFFIX_FORMATS = {".safetensors": "safetensors", ".onnx": "onnx", ".pth": "pth", ".pt": "pth"}


def export_format(args: argparse.Namespace) -> str:
    """--format, else the one -o's suffix names; ONNX graphs exist in srcore's layout only."""
    fmt = args.format or SUFFIX_FORMATS.get(args.out.suffix.lower())
    if fmt is None:
        raise CommandError(f"-o {args.out}: cannot tell the format from its name; end it in "
                           f"{', '.join(SUFFIX_FORMATS)} or give --format")
    if fmt == "onnx" and args.layout != "srcore":
        raise CommandError(f"--layout {args.layout} is a weights layout; an ONNX graph holds the whole network "
                           f"(use --layout srcore, the default)")
    return fmt


def open_spec(path: Path, weights: str, command: str, say: bool = True) -> Spec:
    """The weights file at `path`; with `say`, a note on stderr of which set a file holding two gave."""
    try:
        path = model_path(path)
    except ValueError as error:
        raise CommandError(str(error)) from None
    if not path.exists():
        raise CommandError(f"{path}: no such model file")
    spec = read_spec(path, weights)
    if say and spec.choice is not None:
        print(f"srcore {command}: {path} holds raw and EMA weights; using {spec.choice}", file=sys.stderr)
    return spec


def run_export(args: argparse.Namespace) -> int:
    fmt = export_format(args)
    spec = open_spec(args.model, args.weights, "export")
    reason = refusal(spec.arch, spec.arch_args, args.layout)
    if reason:
        raise CommandError(f"cannot export {args.model} ({spec.arch}) in the {args.layout} layout: {reason}")
    model = rebuild_generator(spec.arch, spec.arch_args, spec.weights, f"{args.model} ({spec.layout} weights)")
    card = exported_card(spec.card, model, args.model, args.layout, fmt)
    writable_folder(args.out.parent, "-o")
    if args.layout == "srcore":
        if fmt == "safetensors":
            export_safetensors(model, args.out, card)
        elif fmt == "onnx":
            export_onnx(model, args.out, card=card)
        else:
            save_checkpoint(args.out, {"arch": spec.arch, "arch_args": spec.arch_args, "model": model.state_dict(),
                                       "card": card})
    else:
        both = spec.sets if args.layout == "basicsr" and fmt == "pth" else None
        state = layout_state(spec.arch, spec.arch_args, spec.weights, args.layout, both)
        if fmt == "pth":
            save_checkpoint(args.out, state)
        else:
            save_weights(state, args.out)
    print(f"{args.model} -> {args.out} ({fmt}, {args.layout} layout, {spec.arch} {spec.arch_args})")
    if args.layout == "basicsr":
        keys = "params and params_ema" if spec.sets and fmt == "pth" else "params"
        print(f"BasicSR options for it ({keys} saved): {basicsr_options(spec.arch, spec.arch_args)}")
    return 0


def onnx_card(path: Path) -> dict[str, Any]:
    try:
        import onnx
    except ImportError:
        raise CommandError("reading ONNX files needs the onnx extra: pip install -e '.[onnx]'") from None
    graph = onnx.load(str(path), load_external_data=False)
    props = {prop.key: prop.value for prop in graph.metadata_props}
    card = card_from_text(props[ONNX_CARD_KEY], str(path)) if ONNX_CARD_KEY in props else {"derived": True}
    card["onnx"] = {"opset": max(op.version for op in graph.opset_import),
                    **{key: value for key, value in props.items() if key != ONNX_CARD_KEY}}
    return card


def file_card(path: Path, weights: str) -> dict[str, Any]:
    """The card stored in `path`, or one derived from its tensors; with how the file holds its weights."""
    if path.suffix.lower() == ".onnx":
        return {"file": str(path), **onnx_card(path)}
    spec = open_spec(path, weights, "info", say=False)  # the card's "weights" line says it
    card = dict(spec.card) if spec.card else {
        "derived": True, **describe_model(rebuild_generator(spec.arch, spec.arch_args, spec.weights, str(path)))}
    sets = "raw and EMA (showing " + spec.choice + ")" if spec.choice else "one set"
    return {"file": str(path), "layout": spec.layout, "weights": sets, **card, **(spec.extra or {})}


def run_info(args: argparse.Namespace) -> int:
    card = file_card(args.model, args.weights)
    print(json.dumps(card, indent=2) if args.json else "\n".join(card_lines(card)))
    return 0


def card_lines(card: dict[str, Any], prefix: str = "") -> list[str]:
    """One `key: value` line per leaf, nested keys joined with dots; arch_args stay on one line."""
    lines = []
    for key, value in card.items():
        if isinstance(value, dict) and value and key != "arch_args":
            lines += card_lines(value, f"{prefix}{key}.")
        else:
            lines.append(f"{prefix}{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    return lines
