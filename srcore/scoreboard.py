"""The evaluate stage's work: bicubic and every model scored on every benchmark set, with charts and crops.

results[dataset][model] = {"psnr", "ssim", "niqe"} means by the protocol (srcore.evaluate); per dataset a
side-by-side crop (bicubic | models... | HR) and, with NIQE, a perception-distortion plot; per metric a bar
chart over datasets and models.
"""
from __future__ import annotations

from pathlib import Path

import torch
from PIL.Image import Image

from srcore.evaluate import (Upscaler, bicubic_upscaler, evaluate_dataset, hr_folder, mean_scores, model_upscaler,
                             reference_niqe)
from srcore.imageio import list_images, read_image
from srcore.interpolate import interpolated_models
from srcore.plots import bar_chart, center_box, crop_strip, perception_distortion, save_png
from srcore.resize import downscale, modcrop
from srcore.weights import load_generator


def parse_models(specs: list[str]) -> dict[str, Path]:
    """`name=path` pairs from the command line, in order. A folder stands for the interpolated models in it
    (the interpolate stage's output), each named alpha=<a>; the name before = is dropped."""
    models = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--model expects NAME=PATH, got {spec!r}")
        models.update(interpolated_models(Path(path)) if Path(path).is_dir() else {name: Path(path)})
    return models


def upscalers(models: dict[str, Path], scale: int, self_ensemble: bool) -> dict[str, Upscaler]:
    """bicubic, then each model (and its x8 self-ensemble as "<name>+" when asked), by name."""
    table = {"bicubic": bicubic_upscaler(scale)}
    for name, path in models.items():
        model = load_generator(path, expect_scale=scale)
        table[name] = model_upscaler(model)
        if self_ensemble:
            table[name + "+"] = model_upscaler(model, self_ensemble=True)
    return table


def crops(upscale: dict[str, Upscaler], data: Path, scale: int, size: int) -> Image:
    """The centre crop of the first image of `data`, upscaled by each upscaler, beside the HR."""
    hr = modcrop(read_image(list_images(hr_folder(data))[0]).rgb.double(), scale)
    lq = downscale(hr, scale)
    panels = [(name, fn(lq)) for name, fn in upscale.items()] + [("HR", hr)]
    return crop_strip(panels, center_box(hr.shape[-2], hr.shape[-1], size))


@torch.no_grad()
def score_models(models: dict[str, Path], benchmark: Path, datasets: tuple[str, ...], plots: Path, *, scale: int,
                 rgb: bool, niqe: bool, self_ensemble: bool, crop_size: int) -> dict[str, dict]:
    """results[dataset][model] for bicubic, every model and (with NIQE) the HR images, plus the pictures
    under `plots`. Every dataset folder is checked before the first output is written."""
    for dataset in datasets:
        list_images(hr_folder(benchmark / dataset))
    upscale = upscalers(models, scale, self_ensemble)
    results = {}
    for dataset in datasets:
        data = benchmark / dataset
        results[dataset] = {name: mean_scores(evaluate_dataset(fn, data, scale, y_channel=not rgb, with_niqe=niqe))
                            for name, fn in upscale.items()}
        save_png(crops(upscale, data, scale, crop_size), plots / "crops" / f"{dataset}.png")
        if niqe:
            results[dataset]["HR"] = mean_scores(reference_niqe(data, scale))
            perception_distortion(results[dataset], plots / "perception_distortion" / f"{dataset}.png",
                                  f"{dataset} x{scale}: perception-distortion", list(models))
    for metric in ("psnr", "ssim") + (("niqe",) if niqe else ()):
        bar_chart(results, metric, plots / f"{metric}.png")
    return results
