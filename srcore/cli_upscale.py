"""`srcore upscale`: every input through a model (or MATLAB bicubic), tile by tile, to PNG, JPEG or WebP,
upright (EXIF orientation applied) with the source's EXIF and ICC profile carried over."""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from srcore import memory
from srcore.cli import EXIT_PARTIAL, CommandError
from srcore.cli_images import expand_inputs, load_model, resolve_device, writable_folder
from srcore.imagewrite import SUFFIXES, write_image
from srcore.imageio import read_image
from srcore.infer import Bicubic, rescale_samples, upscale_image
from srcore.multiscale import select_scale

BICUBIC_SCALE = 4  # --model bicubic without --outscale


@dataclass(frozen=True)
class Plan:
    """Where each input goes and as what: outputs[i] is written for files[i] in format `fmt`."""
    files: list[Path]
    outputs: list[Path]
    fmt: str


def plan_outputs(files: list[Path], out: Path, ext: str | None) -> Plan:
    """-o as a file (one input, a name ending in an image suffix, not an existing folder) or as a folder of
    <stem>.<ext>; CommandError for clashes: two inputs to one file, an output that is its input."""
    as_file = out.suffix.lower() in SUFFIXES and not out.is_dir()
    if as_file and len(files) > 1:
        raise CommandError(f"-o {out} names one file but {len(files)} inputs were given; give a folder")
    if as_file:
        fmt = SUFFIXES[out.suffix.lower()]
        if ext is not None and ext != fmt:
            raise CommandError(f"--ext {ext} but -o {out} ends in {out.suffix}; give one or make them agree")
        outputs = [out]
    else:
        fmt = ext or "png"
        outputs = [out / f"{path.stem}.{fmt}" for path in files]
    clashes = sorted({o.name for o in outputs if outputs.count(o) > 1})
    if clashes:
        raise CommandError(f"several inputs would be written to the same file in {out}: {', '.join(clashes)}")
    overwritten = [path for path, o in zip(files, outputs) if o.resolve() == path.resolve()]
    if overwritten:
        raise CommandError(f"-o {out} would overwrite the input {overwritten[0]}; pick another folder")
    return Plan(files, outputs, fmt)


def open_upscaler(args: argparse.Namespace) -> nn.Module:
    """The model --model names: MATLAB bicubic at --outscale (a whole factor, default 4), or a weights file."""
    if args.model == "bicubic":
        scale = BICUBIC_SCALE if args.outscale is None else args.outscale
        if scale != int(scale):
            raise CommandError(f"--model bicubic upscales by whole factors; --outscale {args.outscale:g} is not one")
        return Bicubic(int(scale))
    model = load_model(args.model, args.weights, "upscale")
    channels = (model.arch_args.get("in_ch", 3), model.arch_args.get("out_ch", 3))  # a Y model takes RGB too
    if channels != (3, 3):
        raise CommandError(f"--model {args.model} maps {channels[0]} to {channels[1]} channels; srcore upscale "
                           f"needs an RGB model (3 to 3)")
    return model if args.scale is None else model_at_scale(model, args.scale, args.model)


def model_at_scale(model: nn.Module, scale: int, name: str) -> nn.Module:
    """A multi-scale model (MDSR, VDSR) set to upscale x`scale`; any model at its own scale; else a bad command."""
    try:
        return select_scale(model, scale)
    except ValueError as error:
        raise CommandError(f"--model {name}: {error}") from error


def bit_depth(args: argparse.Namespace, fmt: str) -> int | None:
    """The --bits to write, checked against the format: JPEG and WebP hold 8 bits."""
    if fmt == "png":
        return args.bits
    if args.bits == 16:
        raise CommandError(f"--bits 16, but {fmt} holds 8 bits per channel; write png for 16 bits")
    return 8


def upscale_file(model: nn.Module, path: Path, out: Path, fmt: str, args: argparse.Namespace, device: str) -> str:
    """Read, upscale (and resize to --outscale), write one image; returns a short description of the output."""
    scale = model.arch_args["scale"]
    image = read_image(path, max_pixels=args.max_pixels)
    samples = upscale_image(model, image, scale, tile=args.tile, pad=args.tile_pad, device=device,
                            precision=args.precision, bit_depth=bit_depth(args, fmt), quiet=args.quiet)
    height, width = image.rgb.shape[1:]
    resized = args.outscale is not None and args.outscale != scale
    if resized:
        samples = rescale_samples(samples, max(1, round(width * args.outscale)), max(1, round(height * args.outscale)))
    write_image(out, samples, fmt, quality=args.quality, exif=image.exif, icc=image.icc)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[samples.shape[2]]
    how = f"x{scale}" + (f", resized to x{args.outscale:g} (Lanczos)" if resized else "")
    return f"{samples.shape[1]}x{samples.shape[0]} {mode} {8 * samples.itemsize}-bit {fmt}, {how}"


def run_upscale(args: argparse.Namespace) -> int:
    """Upscale every input (see plan_outputs for where it goes), each written atomically. Everything that
    can be checked before the work is: device, inputs, model, outputs and their folder. A file that fails
    later is named on stderr and the rest go on; existing outputs are skipped unless --overwrite.
    Returns 1 if any input failed."""
    device = resolve_device(args.device)
    files, problems = expand_inputs(args.inputs)
    if not files:
        raise CommandError("no input image: " + "; ".join(problems))
    for problem in problems:
        print(f"srcore upscale: error: {problem}", file=sys.stderr)
    plan = plan_outputs(files, args.out, args.ext)
    bit_depth(args, plan.fmt)
    model = open_upscaler(args)
    writable_folder(plan.outputs[0].parent, "-o")
    if device == "cpu":
        memory.keep_freed_memory()  # every tile reuses the last one's freed buffers instead of page-faulting
    written, skipped, failed = 0, 0, len(problems)
    batch = tqdm(list(zip(plan.files, plan.outputs)), desc="images", unit="image",
                 disable=True if args.quiet or len(files) == 1 else None)
    for path, out in batch:
        if out.exists() and not args.overwrite:
            skipped += 1
            tqdm.write(f"srcore upscale: {out} exists, skipped (--overwrite replaces it)", file=sys.stderr)
            continue
        try:
            done = upscale_file(model, path, out, plan.fmt, args, device)
        except (ValueError, OSError, MemoryError, torch.OutOfMemoryError) as error:  # this input's problem
            failed += 1
            message = str(error) if str(path) in str(error) else f"{path}: {error}"
            tqdm.write(f"srcore upscale: error: {message}", file=sys.stderr)
            continue
        written += 1
        tqdm.write(f"{path} -> {out} ({done})")
    print(f"srcore upscale: {written} written, {skipped} skipped, {failed} failed", file=sys.stderr)
    return EXIT_PARTIAL if failed else 0
