"""`srcore eval` and `srcore metrics`: score a model by the protocol, or score images that exist, with one
set of scoring flags (see srcore.cli.add_scoring_options); a table or one JSON object on stdout."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from srcore.cli import CommandError
from srcore.cli_images import all_inputs, load_model, resolve_device, writable_folder
from srcore.evaluate import (METRICS, Distance, ImageScore, SaveImage, Upscaler, bicubic_upscaler, evaluate_dataset,
                             hr_folder, mean_scores, model_upscaler, report, score_pairs)
from srcore.imageio import write_png
from srcore.infer import tiled_upscaler
from srcore.multiscale import select_scale
from srcore.lpips import load_lpips, lpips_distance
from srcore.niqe import NiqeModel, load_niqe_model
from srcore.pairing import pair_references


def eval_upscaler(args: argparse.Namespace, device: str) -> Upscaler:
    """bicubic (the protocol's uint8 MATLAB baseline), or the model in --model run as the flags say: whole
    images in fp32 by default, exactly as the evaluate stage scores; tiled and/or bf16 when asked."""
    if args.model == "bicubic":
        return bicubic_upscaler(args.scale)
    model = load_model(args.model, args.weights, "eval")
    try:
        model = select_scale(model, args.scale)  # a multi-scale model at --scale; any other at its own only
    except ValueError:
        raise CommandError(f"--model {args.model} is a x{model.arch_args['scale']} model, expected "
                           f"x{args.scale}") from None
    if args.tile == 0 and args.precision == "fp32":
        return model_upscaler(model, device=device, self_ensemble=args.self_ensemble)
    return tiled_upscaler(model, tile=args.tile, pad=args.tile_pad, device=device, precision=args.precision,
                          self_ensemble=args.self_ensemble, quiet=args.quiet)


def scoring_tools(args: argparse.Namespace, device: str) -> tuple[NiqeModel | None, Distance | None]:
    """The NIQE model (None with --no-niqe) and the LPIPS distance (None without --lpips)."""
    niqe = None if args.no_niqe else load_niqe_model(args.niqe_model)
    lpips = None if args.lpips is None else lpips_distance(load_lpips(args.lpips), device)
    return niqe, lpips


def image_saver(folder: Path | None) -> SaveImage | None:
    if folder is None:
        return None
    writable_folder(folder, "--save-images")
    return lambda name, sr: write_png(folder / f"{Path(name).stem}.png", sr)


def run_eval(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    if not args.data.is_dir():
        raise CommandError(f"--data {args.data}: no such folder (give a folder of HR images, or one holding HR/)")
    upscale = eval_upscaler(args, device)
    niqe, lpips = scoring_tools(args, device)
    crop = args.scale if args.crop_border is None else args.crop_border
    scores = evaluate_dataset(upscale, args.data, args.scale, crop=crop, y_channel=not args.rgb,
                              with_niqe=niqe is not None, niqe_model=niqe, lpips=lpips,
                              save=image_saver(args.save_images), quiet=args.quiet)
    show(report(scores, model=args.model, data=str(args.data), scale=args.scale, channel="rgb" if args.rgb else "y",
                crop_border=crop), scores, args, reference=True)
    return 0


def run_metrics(args: argparse.Namespace) -> int:
    images = all_inputs(args.paths)
    if args.reference is None and (args.suffix is not None or args.lpips is not None):
        raise CommandError(f"{'--suffix' if args.suffix is not None else '--lpips'} needs --reference")
    if args.reference is not None and not args.reference.is_dir():
        raise CommandError(f"--reference {args.reference}: no such folder")
    pairs = ([(image, None) for image in images] if args.reference is None else
             pair_references(images, hr_folder(args.reference), args.suffix))
    device = resolve_device(args.device) if args.lpips is not None else "cpu"
    niqe, lpips = scoring_tools(args, device)
    crop = (0 if args.scale == 1 else args.scale) if args.crop_border is None else args.crop_border
    scores = score_pairs(pairs, scale=args.scale, crop=crop, y_channel=not args.rgb, niqe_model=niqe,
                         with_niqe=niqe is not None, lpips=lpips, quiet=args.quiet)
    result = report(scores, reference=None if args.reference is None else str(hr_folder(args.reference)),
                    channel="rgb" if args.rgb else "y", crop_border=crop)
    for image, (_, ref) in zip(result["images"], pairs):
        if ref is not None:
            image["reference"] = ref.name
    show(result, scores, args, reference=args.reference is not None)
    return 0


def show(result: dict[str, Any], scores: list[ImageScore], args: argparse.Namespace, reference: bool) -> None:
    """The JSON object, or a table with a column per metric asked for ("-" where an image has none)."""
    asked = [*(("psnr", "ssim") if reference else ()), *(() if args.no_niqe else ("niqe",)),
             *(("lpips",) if args.lpips is not None else ())]
    print(json.dumps(finite(result), indent=2) if args.json else format_table(scores, asked))


def finite(value: Any) -> Any:
    """`value` with inf/nan floats as the strings "inf", "-inf", "nan": strict JSON has no such numbers
    (PSNR of identical images is inf)."""
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def format_table(scores: list[ImageScore], columns: list[str] | None = None) -> str:
    """A column per metric in `columns` (default: those any image has), a row per image, then the means."""
    columns = columns or [key for key in METRICS if any(getattr(s, key) is not None for s in scores)]
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
