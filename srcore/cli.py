"""The `srcore` command line: score bicubic or a model on a benchmark folder, score existing images, or
upscale images with a model.

    srcore eval --model bicubic --data data/benchmark/Set5 --scale 4 [--rgb] [--crop-border N] [--json]
    srcore eval --model models/psnr.pt --data data/benchmark/Set5 --scale 4 [--self-ensemble]
    srcore metrics out/*.png --reference data/benchmark/Set5/HR --scale 4 [--json]
    srcore upscale models/psnr.pt photo.jpg photos/ --out out/ [--tile 128] [--overlap 40] [--bits 8|16]
                   [--device cpu|cuda]
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
from srcore.imageio import IMAGE_SUFFIXES, ImageReadError, list_images, read_image, write_png
from srcore.infer import upscale_image
from srcore.niqe import load_niqe_model

MODELS = {"bicubic": bicubic_upscaler}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
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
    add_upscale_parser(commands)
    return parser


def add_upscale_parser(commands: argparse._SubParsersAction) -> None:
    up = commands.add_parser("upscale", help="upscale images with a checkpoint's generator, tile by tile")
    up.add_argument("model", type=Path, help="checkpoint file (its arch_args give the scale)")
    up.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    up.add_argument("--out", required=True, type=Path, help="folder for the outputs, written as <stem>.png")
    up.add_argument("--tile", type=non_negative_int, default=128, metavar="N",
                    help="LR tile size in pixels; 0 runs each image whole (default 128)")
    up.add_argument("--overlap", type=non_negative_int, default=40, metavar="N",
                    help="LR pixels of context around each tile; seamless once >= the model's receptive "
                         "radius (default 40)")
    up.add_argument("--bits", type=int, default=8, choices=(8, 16), help="bits per channel of the PNGs (default 8)")
    up.add_argument("--device", choices=("cpu", "cuda"), default=None,
                    help="where the model runs (default: cuda when available, else cpu)")


def upscaler(model: str, scale: int, self_ensemble: bool) -> Upscaler:
    """A named baseline, or the generator a checkpoint file describes (fp32, CPU or the first GPU)."""
    if model in MODELS:
        return MODELS[model](scale)
    if not Path(model).is_file():
        raise SystemExit(f"srcore eval: --model {model!r} is neither a checkpoint file nor one of: {', '.join(MODELS)}")
    generator = generator_from_checkpoint(model, expect_scale=scale)  # a bad file: ValueError, reported by main
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


def expand_paths(paths: list[Path], command: str) -> list[Path]:
    """Files as given, folders replaced by the images they hold; `command` names the caller in errors."""
    files = []
    for path in paths:
        if path.is_dir():
            files.extend(list_images(path))
        elif path.is_file():
            files.append(path)
        else:
            raise SystemExit(f"srcore {command}: {path} does not exist "
                             f"(give image files {'/'.join(IMAGE_SUFFIXES)} or folders)")
    return files


def run_metrics(args: argparse.Namespace) -> dict:
    crop = (0 if args.scale == 1 else args.scale) if args.crop_border is None else args.crop_border
    scores = score_files(expand_paths(args.paths, "metrics"), args.reference, scale=args.scale, crop=crop,
                         y_channel=not args.rgb, niqe_model=load_niqe_model(args.niqe_model))
    return report(scores, reference=None if args.reference is None else str(args.reference),
                  channel="rgb" if args.rgb else "y", crop_border=crop)


def run_upscale(args: argparse.Namespace) -> int:
    """Upscale every input to args.out/<stem>.png; files are written one by one, each atomically."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("srcore upscale: --device cuda, but torch sees no CUDA device; use --device cpu")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    files = expand_paths(args.inputs, "upscale")
    outputs = [args.out / f"{path.stem}.png" for path in files]
    clashes = sorted({out.name for out in outputs if outputs.count(out) > 1})
    if clashes:
        raise ValueError(f"several inputs would be written to the same file in {args.out}: {', '.join(clashes)}")
    overwritten = [path for path, out in zip(files, outputs) if out.resolve() == path.resolve()]
    if overwritten:
        raise ValueError(f"--out {args.out} would overwrite the input {overwritten[0]}; pick another folder")
    model = generator_from_checkpoint(args.model)
    scale = model.arch_args["scale"]
    args.out.mkdir(parents=True, exist_ok=True)
    for path, out in zip(files, outputs):
        sr = upscale_image(model, read_image(path), scale, tile=args.tile, overlap=args.overlap, device=device)
        write_png(out, sr.rgb[:1] if sr.grey else sr.rgb, sr.alpha, bit_depth=args.bits)
        print(f"{path} -> {out} ({sr.rgb.shape[2]}x{sr.rgb.shape[1]}, x{scale})")
    return 0


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
        if args.command == "upscale":
            return run_upscale(args)
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
