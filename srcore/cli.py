"""The `srcore` command line: score bicubic or a model on a benchmark folder, score existing images,
upscale images with a model, or export a model.

    srcore eval --model bicubic --data data/benchmark/Set5 --scale 4 [--rgb] [--crop-border N] [--json]
    srcore eval --model models/psnr.pt --data data/benchmark/Set5 --scale 4 [--self-ensemble]
    srcore metrics out/*.png --reference data/benchmark/Set5/HR --scale 4 [--json]
    srcore upscale photo.jpg photos/ 'scans/*.tif' -o out/ --model models/psnr.pt [--tile 256] [--tile-pad 40]
                   [--bits 8|16] [--device cpu|cuda] [--precision fp32|bf16] [--overwrite]
    srcore export models/psnr.pt --format safetensors|onnx -o psnr.safetensors

`upscale` and `export` take an srcore checkpoint or foreign weights (ESRGAN, BasicSR, EDSR-PyTorch .pth,
.safetensors; see srcore.weights). Exit status: 0 when all went well, 1 when `upscale` failed on some
inputs (each named on stderr, the others still written), 2 for a bad command (bad model, clashing outputs).
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from srcore import memory
from srcore.evaluate import (ImageScore, Upscaler, bicubic_upscaler, evaluate_dataset, mean_scores, model_upscaler,
                             report, score_files)
from srcore.export import FORMATS, export_onnx, export_safetensors
from srcore.imageio import IMAGE_SUFFIXES, ImageReadError, list_images, read_image, write_samples
from srcore.infer import PRECISIONS, upscale_image
from srcore.niqe import load_niqe_model
from srcore.weights import load_generator

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
    ev.add_argument("--model", required=True,
                    help=f"one of: {', '.join(MODELS)}, or a checkpoint / weights file (see upscale --model)")
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
    add_export_parser(commands)
    return parser


def add_upscale_parser(commands: argparse._SubParsersAction) -> None:
    up = commands.add_parser("upscale", help="upscale images with a model, tile by tile")
    up.add_argument("inputs", nargs="+", help="image files, folders, or glob patterns (expanded when quoted)")
    up.add_argument("-o", "--out", required=True, type=Path, help="folder for the outputs, written as <stem>.png")
    up.add_argument("--model", required=True, type=Path,
                    help="srcore checkpoint or foreign weights (.pth/.pt/.safetensors); its scale is used")
    up.add_argument("--tile", type=non_negative_int, default=256, metavar="N",
                    help="LR tile size in pixels; 0 runs each image whole (default 256)")
    up.add_argument("--tile-pad", type=non_negative_int, default=40, metavar="P",
                    help="LR pixels of context around each tile; tiled = untiled once >= the model's receptive "
                         "radius (default 40: EDSR/SRResNet presets; RRDBNet needs ~15 per block)")
    up.add_argument("--bits", type=int, default=None, choices=(8, 16),
                    help="bits per channel of the PNGs (default: the input's, so 16-bit stays 16-bit)")
    up.add_argument("--device", choices=("cpu", "cuda"), default=None,
                    help="where the model runs (default: cuda when available, else cpu)")
    up.add_argument("--precision", choices=PRECISIONS, default="fp32",
                    help="fp32 (default) or bf16 autocast: faster on bf16-capable CPUs/GPUs, ~1/255 less exact")
    up.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")


def add_export_parser(commands: argparse._SubParsersAction) -> None:
    ex = commands.add_parser("export", help="write a model as .safetensors (weights + arch) or ONNX")
    ex.add_argument("model", type=Path, help="srcore checkpoint or foreign weights (see upscale --model)")
    ex.add_argument("--format", required=True, choices=FORMATS)
    ex.add_argument("-o", "--out", required=True, type=Path, help="output file")


def upscaler(model: str, scale: int, self_ensemble: bool) -> Upscaler:
    """A named baseline, or the generator a weights file describes (srcore.weights: checkpoints and foreign
    layouts), run in fp32 on the first GPU or the CPU."""
    if model in MODELS:
        return MODELS[model](scale)
    if not Path(model).is_file():
        raise SystemExit(f"srcore eval: --model {model!r} is neither a checkpoint file nor one of: {', '.join(MODELS)}")
    generator = load_generator(model)  # a bad file: ValueError, reported by main
    if generator.arch_args["scale"] != scale:
        raise ValueError(f"{model} is a x{generator.arch_args['scale']} model, expected x{scale}")
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


def upscale_inputs(patterns: list[str]) -> tuple[list[Path], list[str]]:
    """The image files named, held by folders, or matched by glob patterns (for patterns the shell left
    quoted), in order and without repeats; plus one problem per pattern that gave no image."""
    files: dict[Path, None] = {}  # ordered, without repeats
    problems = []
    for text in patterns:
        path = Path(text)
        if path.is_dir():
            try:
                found = list_images(path)
            except FileNotFoundError as error:
                problems.append(str(error))
                continue
        elif path.is_file():
            found = [path]
        elif any(char in text for char in "*?["):
            found = [Path(p) for p in sorted(glob.glob(text)) if Path(p).suffix.lower() in IMAGE_SUFFIXES]
            if not found:
                problems.append(f"{text}: no image file ({'/'.join(IMAGE_SUFFIXES)}) matches this pattern")
        else:
            problems.append(f"{text}: no such file or folder")
            continue
        files.update(dict.fromkeys(found))
    return list(files), problems


def output_paths(files: list[Path], out: Path) -> list[Path]:
    """out/<stem>.png per input; a ValueError when two inputs share a stem or an output is an input."""
    outputs = [out / f"{path.stem}.png" for path in files]
    clashes = sorted({o.name for o in outputs if outputs.count(o) > 1})
    if clashes:
        raise ValueError(f"several inputs would be written to the same file in {out}: {', '.join(clashes)}")
    overwritten = [path for path, o in zip(files, outputs) if o.resolve() == path.resolve()]
    if overwritten:
        raise ValueError(f"--out {out} would overwrite the input {overwritten[0]}; pick another folder")
    return outputs


def upscale_file(model: nn.Module, path: Path, out: Path, args: argparse.Namespace, device: str) -> str:
    """Read, upscale and write one image; returns a short description of the output."""
    scale = model.arch_args["scale"]
    samples = upscale_image(model, read_image(path), scale, tile=args.tile, pad=args.tile_pad, device=device,
                            precision=args.precision, bit_depth=args.bits)  # (sH, sW, C) uint8/uint16
    write_samples(out, samples)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[samples.shape[2]]
    return f"{samples.shape[1]}x{samples.shape[0]} {mode} {8 * samples.itemsize}-bit, x{scale}"


def run_upscale(args: argparse.Namespace) -> int:
    """Upscale every input to args.out/<stem>.png, each written atomically. A file that fails is named on
    stderr and the rest go on; existing outputs are skipped unless --overwrite. 1 if any input failed."""
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("srcore upscale: --device cuda, but torch sees no CUDA device; use --device cpu")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        memory.keep_freed_memory()  # every tile reuses the last one's freed buffers instead of page-faulting
    files, problems = upscale_inputs(args.inputs)
    for problem in problems:
        print(f"srcore upscale: error: {problem}", file=sys.stderr)
    outputs = output_paths(files, args.out)
    model = load_generator(args.model)
    if (model.arch_args["in_ch"], model.arch_args["out_ch"]) != (3, 3):
        raise ValueError(f"--model {args.model} maps {model.arch_args['in_ch']} to {model.arch_args['out_ch']} "
                         f"channels; srcore upscale needs an RGB model (3 to 3)")
    args.out.mkdir(parents=True, exist_ok=True)
    written, skipped, failed = 0, 0, len(problems)
    batch = tqdm(list(zip(files, outputs)), desc="images", unit="image", disable=None if len(files) > 1 else True)
    for path, out in batch:
        if out.exists() and not args.overwrite:
            skipped += 1
            tqdm.write(f"srcore upscale: {out} exists, skipped (--overwrite replaces it)", file=sys.stderr)
            continue
        try:
            done = upscale_file(model, path, out, args, device)
        except (ValueError, OSError, MemoryError, torch.OutOfMemoryError) as error:  # this input's problem
            failed += 1
            message = str(error) if str(path) in str(error) else f"{path}: {error}"
            tqdm.write(f"srcore upscale: error: {message}", file=sys.stderr)
            continue
        written += 1
        tqdm.write(f"{path} -> {out} ({done})")
    print(f"srcore upscale: {written} written, {skipped} skipped, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def run_export(args: argparse.Namespace) -> int:
    model = load_generator(args.model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    (export_safetensors if args.format == "safetensors" else export_onnx)(model, args.out)
    print(f"{args.model} -> {args.out} ({args.format}, {model.name} {model.arch_args})")
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
        if args.command in ("upscale", "export"):
            return (run_upscale if args.command == "upscale" else run_export)(args)
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
