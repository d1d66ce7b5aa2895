"""DVC stage `evaluate`: bicubic and every trained model on the benchmark sets, by the SR protocol.

Writes the metrics JSON (PSNR, SSIM, NIQE per dataset and model), a bar chart per metric and, per
dataset, a side-by-side crop (bicubic | models... | HR).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL.Image import Image

from srcore.atomic import write_text
from srcore.checkpoint import generator_from_checkpoint
from srcore.config import CommonConfig, load_params, params_group
from srcore.evaluate import (Upscaler, bicubic_upscaler, evaluate_dataset, hr_folder, mean_scores, model_upscaler,
                             reference_niqe)
from srcore.imageio import list_images, read_image
from srcore.plots import bar_chart, center_box, crop_strip, perception_distortion, save_png
from srcore.resize import downscale, modcrop
from srcore.stage import run_stage


@dataclass(frozen=True)
class EvaluateConfig:
    datasets: tuple[str, ...]
    rgb: bool = False          # score PSNR/SSIM on RGB instead of Y
    niqe: bool = True
    self_ensemble: bool = False  # x8 geometric self-ensemble for the models (reported as "<name>+")
    crop_size: int = 96        # side of the side-by-side crops, in HR pixels


def parse_models(specs: list[str]) -> dict[str, Path]:
    """`name=path` pairs from the command line, in order. A folder stands for the interpolated models in it
    (the interpolate stage's alpha_*.pt), named alpha=<a> in order of alpha; the name before = is dropped."""
    models = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--model expects NAME=PATH, got {spec!r}")
        if Path(path).is_dir():
            models.update({f"alpha={p.stem.removeprefix('alpha_')}": p for p in sorted(Path(path).glob("alpha_*.pt"))})
        else:
            models[name] = Path(path)
    return models


def upscalers(models: dict[str, Path], scale: int, self_ensemble: bool) -> dict[str, Upscaler]:
    table = {"bicubic": bicubic_upscaler(scale)}
    for name, path in models.items():
        model = generator_from_checkpoint(path, expect_scale=scale)
        table[name] = model_upscaler(model)
        if self_ensemble:
            table[name + "+"] = model_upscaler(model, self_ensemble=True)
    return table


def crops(upscale: dict[str, Upscaler], data: Path, scale: int, size: int) -> Image:
    hr = modcrop(read_image(list_images(hr_folder(data))[0]).rgb.double(), scale)
    lr = downscale(hr, scale)
    panels = [(name, fn(lr)) for name, fn in upscale.items()] + [("HR", hr)]
    return crop_strip(panels, center_box(hr.shape[-2], hr.shape[-1], size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--benchmark", type=Path, required=True, help="folder holding one folder per dataset")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH", help="a checkpoint to score")
    parser.add_argument("--out", type=Path, required=True, help="metrics JSON")
    parser.add_argument("--plots", type=Path, required=True, help="folder for charts and crops")
    args = parser.parse_args()
    params = load_params(args.params)
    config = params_group(params, EvaluateConfig, "evaluate")
    scale = params_group(params, CommonConfig, "common").scale
    torch.set_grad_enabled(False)
    for dataset in config.datasets:  # every input is checked before the first output is written
        list_images(hr_folder(args.benchmark / dataset))
    models = parse_models(args.model)
    upscale = upscalers(models, scale, config.self_ensemble)
    results = {}
    for dataset in config.datasets:
        results[dataset] = {}
        for name, fn in upscale.items():
            scores = evaluate_dataset(fn, args.benchmark / dataset, scale, y_channel=not config.rgb,
                                      with_niqe=config.niqe)
            results[dataset][name] = mean_scores(scores)
        save_png(crops(upscale, args.benchmark / dataset, scale, config.crop_size),
                 args.plots / "crops" / f"{dataset}.png")
        if config.niqe:
            results[dataset]["HR"] = mean_scores(reference_niqe(args.benchmark / dataset, scale))
            perception_distortion(results[dataset], args.plots / "perception_distortion" / f"{dataset}.png",
                                  f"{dataset} x{scale}: perception-distortion", list(models))
    for metric in ("psnr", "ssim") + (("niqe",) if config.niqe else ()):
        bar_chart(results, metric, args.plots / f"{metric}.png")
    write_text(args.out, json.dumps({"scale": scale, **results}, indent=2) + "\n")  # atomic
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    run_stage("evaluate", main)
