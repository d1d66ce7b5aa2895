"""The evaluate stage's work: bicubic and every model scored on every benchmark set, with charts and crops.

results[set][model] = {"psnr", "ssim", "niqe"} means by the protocol (srcore.evaluate); per set a
side-by-side crop (bicubic | models... | HR) and, with NIQE, a perception-distortion plot; per metric a bar
chart over sets and models. A set is a dataset at common.scale ("Set5"), or at another scale that a
multi-scale model (MDSR, VDSR) has ("Set5 x2": bicubic and the models with that scale). Y-channel models
(SRCNN, VDSR) take and return RGB like any other and need nothing here.
"""
from __future__ import annotations

from pathlib import Path

import torch
from PIL.Image import Image
from torch import nn

from srcore.evaluate import (Upscaler, bicubic_upscaler, evaluate_dataset, hr_folder, mean_scores, model_upscaler,
                             reference_niqe)
from srcore.imageio import list_images, read_image
from srcore.interpolate import interpolated_models
from srcore.multiscale import model_scales, select_scale
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


def load_models(models: dict[str, Path], scale: int) -> dict[str, nn.Module]:
    """Every generator by name; each must upscale x`scale` (common.scale), a multi-scale one among others."""
    loaded = {}
    for name, path in models.items():
        model = load_generator(path)
        if scale not in model_scales(model):
            raise ValueError(f"{path} is a x{'/x'.join(map(str, model_scales(model)))} model, expected x{scale}")
        loaded[name] = model
    return loaded


def upscalers(models: dict[str, nn.Module], scale: int, self_ensemble: bool) -> dict[str, Upscaler]:
    """bicubic, then each model that upscales x`scale` (and its x8 self-ensemble as "<name>+" when asked)."""
    table = {"bicubic": bicubic_upscaler(scale)}
    for name, model in models.items():
        if scale in model_scales(model):
            table[name] = model_upscaler(select_scale(model, scale))
            if self_ensemble:
                table[name + "+"] = model_upscaler(select_scale(model, scale), self_ensemble=True)
    return table


def scale_plan(models: dict[str, nn.Module], scale: int) -> list[int]:
    """The scales to score: common.scale first, then every other scale a multi-scale model has."""
    return [scale, *sorted({s for model in models.values() for s in model_scales(model)} - {scale})]


def set_name(dataset: str, scale: int, main_scale: int) -> str:
    """How results name a benchmark set at a scale: the dataset at common.scale, else "<dataset> x<s>"."""
    return dataset if scale == main_scale else f"{dataset} x{scale}"


def crops(upscale: dict[str, Upscaler], data: Path, scale: int, size: int) -> Image:
    """The centre crop of the first image of `data`, upscaled by each upscaler, beside the HR."""
    hr = modcrop(read_image(list_images(hr_folder(data))[0]).rgb.double(), scale)
    lq = downscale(hr, scale)
    panels = [(name, fn(lq)) for name, fn in upscale.items()] + [("HR", hr)]
    return crop_strip(panels, center_box(hr.shape[-2], hr.shape[-1], size))


@torch.no_grad()
def score_models(models: dict[str, Path], benchmark: Path, datasets: tuple[str, ...], plots: Path, *, scale: int,
                 rgb: bool, niqe: bool, self_ensemble: bool, crop_size: int) -> dict[str, dict]:
    """results[set][model] for bicubic, every model and (with NIQE) the HR images, plus the pictures under
    `plots`. Sets are the datasets at `scale`; a multi-scale model (srcore.multiscale) is also scored at each
    of its other scales, beside bicubic and any other model that has that scale, as "<dataset> x<s>". Every
    dataset folder and model is checked before the first output is written."""
    for dataset in datasets:
        list_images(hr_folder(benchmark / dataset))
    loaded = load_models(models, scale)
    results = {}
    for s in scale_plan(loaded, scale):
        upscale = upscalers(loaded, s, self_ensemble)
        for dataset in datasets:
            name = set_name(dataset, s, scale)
            results[name] = score_set(upscale, benchmark / dataset, s, name, plots, rgb=rgb, niqe=niqe,
                                      crop_size=crop_size, path_models=list(models))
    for metric in ("psnr", "ssim") + (("niqe",) if niqe else ()):
        bar_chart(results, metric, plots / f"{metric}.png")
    return results


def score_set(upscale: dict[str, Upscaler], data: Path, scale: int, name: str, plots: Path, *, rgb: bool,
              niqe: bool, crop_size: int, path_models: list[str]) -> dict[str, dict[str, float]]:
    """Mean scores of every upscaler (and the HR images' NIQE) on one dataset at `scale`, with its crops and
    perception-distortion plot saved under `plots` as <name>.png (spaces as underscores)."""
    scores = {model: mean_scores(evaluate_dataset(fn, data, scale, y_channel=not rgb, with_niqe=niqe))
              for model, fn in upscale.items()}
    file = f"{name.replace(' ', '_')}.png"
    save_png(crops(upscale, data, scale, crop_size), plots / "crops" / file)
    if niqe:
        scores["HR"] = mean_scores(reference_niqe(data, scale))
        perception_distortion(scores, plots / "perception_distortion" / file,
                              f"{data.name} x{scale}: perception-distortion", path_models)
    return scores
