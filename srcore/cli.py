"""The `srcore` command line: score bicubic or a model on a benchmark folder, or score existing images.

    srcore eval --model bicubic --data data/benchmark/Set5 --scale 4 [--rgb] [--crop-border N] [--json]
    srcore eval --model models/psnr.pt --data data/benchmark/Set5 --scale 4 [--self-ensemble]
    srcore metrics out/*.png --reference data/benchmark/Set5/HR --scale 4 [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from srcore.checkpoint import generator_from_checkpoint
from srcore.evaluate import (ImageScore, Upscaler, bicubic_upscaler, evaluate_dataset, mean_scores, model_upscaler,
                             report, score_files)
from srcore.imageio import IMAGE_SUFFIXES, ImageReadError, list_images
from srcore.niqe import load_niqe_model

MODELS = {"bicubic": bicubic_upscaler}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_scoring_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rgb", action="store_true", help="score PSNR/SSIM on RGB instead of Y (default: Y)")
    parser.add_argument("--crop-border", type=int, default=None, metavar="N",
                        help="pixels cropped from every border before scoring (default: the scale)")
    parser.add_argument("--niqe-model", type=Path, default=None, metavar="NPZ",
                        help="NIQE pristine model (default: the official one shipped with srcore)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srcore", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    ev = commands.add_parser("eval", help="make LR from HR by the protocol, upscale it, score it")
    ev.add_argument("--model", required=True, help=f"one of: {', '.join(MODELS)}, or a checkpoint file")
    ev.add_argument("--self-ensemble", action="store_true", help="average a model over the 8 flips/rotations")
    ev.add_argument("--data", required=True, type=Path, help="folder of HR images (or holding HR/)")
    ev.add_argument("--scale", required=True, type=int, choices=(2, 3, 4))
    ev.add_argument("--no-niqe", action="store_true", help="skip NIQE (the slowest metric)")
    add_scoring_options(ev)
    me = commands.add_parser("metrics", help="score existing images (NIQE always, PSNR/SSIM with --reference)")
    me.add_argument("paths", nargs="+", type=Path, help="image files or folders")
    me.add_argument("--reference", type=Path, default=None, help="folder of references with the same file names")
    me.add_argument("--scale", type=positive_int, default=1, help="sets the default --crop-border (default 1: none)")
    add_scoring_options(me)
    return parser


def upscaler(model: str, scale: int, self_ensemble: bool) -> Upscaler:
    """A named baseline, or the generator a checkpoint file describes (fp32, CPU or the first GPU)."""
    if model in MODELS:
        return MODELS[model](scale)
    if not Path(model).is_file():
        raise SystemExit(f"srcore eval: --model {model!r} is neither a checkpoint file nor one of: {', '.join(MODELS)}")
    try:
        generator = generator_from_checkpoint(model, expect_scale=scale)
    except ValueError as error:
        raise SystemExit(f"srcore eval: {error}") from error
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return model_upscaler(generator, device=device, self_ensemble=self_ensemble)


def run_eval(args: argparse.Namespace) -> dict:
    if not args.data.is_dir():
        raise SystemExit(f"srcore eval: --data {args.data} is not a folder")
    crop = args.scale if args.crop_border is None else args.crop_border
    scores = evaluate_dataset(upscaler(args.model, args.scale, args.self_ensemble), args.data, args.scale, crop=crop,
                              y_channel=not args.rgb, with_niqe=not args.no_niqe,
                              niqe_model=load_niqe_model(args.niqe_model))
    return report(scores, model=args.model, data=str(args.data), scale=args.scale,
                  channel="rgb" if args.rgb else "y", crop_border=crop)


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given, folders replaced by the images they hold."""
    files = []
    for path in paths:
        if path.is_dir():
            files.extend(list_images(path))
        elif path.is_file():
            files.append(path)
        else:
            raise SystemExit(f"srcore metrics: {path} does not exist "
                             f"(give image files {'/'.join(IMAGE_SUFFIXES)} or folders)")
    return files


def run_metrics(args: argparse.Namespace) -> dict:
    crop = (0 if args.scale == 1 else args.scale) if args.crop_border is None else args.crop_border
    scores = score_files(expand_paths(args.paths), args.reference, scale=args.scale, crop=crop,
                         y_channel=not args.rgb, niqe_model=load_niqe_model(args.niqe_model))
    return report(scores, reference=None if args.reference is None else str(args.reference),
                  channel="rgb" if args.rgb else "y", crop_border=crop)


def format_table(scores: list[ImageScore]) -> str:
    columns = [key for key in ("psnr", "ssim", "niqe") if any(getattr(s, key) is not None for s in scores)]
    width = max([len(s.name) for s in scores] + [4])
    lines = [f"{'image':<{width}}" + "".join(f"{key.upper():>10}" for key in columns)]
    for s in scores:
        lines.append(f"{s.name:<{width}}" + "".join(fmt(getattr(s, key), key) for key in columns))
    means = mean_scores(scores)
    lines.append(f"{'mean':<{width}}" + "".join(fmt(means.get(key), key) for key in columns))
    return "\n".join(lines)


def fmt(value: float | None, key: str) -> str:
    if value is None:
        return f"{'-':>10}"
    return f"{value:>10.3f}" if key == "psnr" else f"{value:>10.4f}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run_eval(args) if args.command == "eval" else run_metrics(args)
    except (ImageReadError, FileNotFoundError, ValueError) as error:
        # Bad input is the user's to fix: one line naming it, not a traceback.
        print(f"srcore {args.command}: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        scores = [ImageScore(**image) for image in result["images"]]
        print(format_table(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
