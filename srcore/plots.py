"""Pictures of results: side-by-side crops and per-dataset bar charts, written as PNGs for `dvc plots`."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on CI or servers
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from srcore.atomic import atomic_path  # noqa: E402
from srcore.imageio import to_uint8  # noqa: E402

LABEL_HEIGHT = 14


def center_box(height: int, width: int, size: int) -> tuple[int, int, int]:
    """(top, left, side) of a centred square of at most `size` pixels."""
    side = min(size, height, width)
    return (height - side) // 2, (width - side) // 2, side


def crop_strip(panels: list[tuple[str, torch.Tensor]], box: tuple[int, int, int], zoom: int = 2) -> Image.Image:
    """Crops of equally sized images side by side, each labelled and enlarged by nearest-neighbour `zoom`.

    panels: [(label, (3, H, W) in [0, 1])]; box: (top, left, side) in those images' pixels.
    """
    top, left, side = box
    tiles = []
    for label, image in panels:
        crop = to_uint8(image[:, top:top + side, left:left + side]).permute(1, 2, 0).numpy()
        tile = Image.fromarray(crop).resize((side * zoom, side * zoom), Image.NEAREST)
        canvas = Image.new("RGB", (tile.width, tile.height + LABEL_HEIGHT), "white")
        canvas.paste(tile, (0, LABEL_HEIGHT))
        ImageDraw.Draw(canvas).text((2, 1), label, fill="black")
        tiles.append(canvas)
    strip = Image.new("RGB", (sum(t.width for t in tiles) + 2 * (len(tiles) - 1), tiles[0].height), "white")
    x = 0
    for tile in tiles:
        strip.paste(tile, (x, 0))
        x += tile.width + 2
    return strip


def save_png(image: Image.Image, path: Path) -> None:
    with atomic_path(path) as temporary:
        image.save(temporary, format="PNG")


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Write `fig` as a PNG at `path` atomically, then close it."""
    try:
        with atomic_path(path) as temporary:
            fig.savefig(temporary, format="png", dpi=110)
    finally:
        plt.close(fig)


def bar_chart(results: dict[str, dict[str, dict[str, float]]], metric: str, path: Path) -> None:
    """One group of bars per dataset, one bar per model: results[dataset][model][metric]."""
    datasets = list(results)
    models = list(dict.fromkeys(m for d in datasets for m, v in results[d].items() if metric in v))
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(1.5 + 1.6 * len(datasets), 3.2))
    for i, model in enumerate(models):
        values = [results[d].get(model, {}).get(metric, float("nan")) for d in datasets]
        bars = ax.bar([j + i * width for j in range(len(datasets))], values, width, label=model)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(datasets))], datasets)
    ax.set_ylabel(metric.upper())
    low = min((v[metric] for d in results.values() for v in d.values() if metric in v), default=0)
    ax.set_ylim(bottom=low * 0.9 if metric == "psnr" else 0)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def perception_distortion(scores: dict[str, dict[str, float]], path: Path, title: str,
                          path_models: list[str]) -> None:
    """PSNR against NIQE, one point per model: scores[model] = {"psnr", "niqe", ...}.

    `path_models` (e.g. psnr, alpha=..., gan) are joined by a line, in that order; bicubic's and the HR
    images' NIQE (scores["HR"]["niqe"]) are drawn as vertical reference lines. Lower NIQE is better.
    """
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    points = [(m, scores[m]) for m in path_models if "niqe" in scores.get(m, {})]
    if points:
        ax.plot([v["niqe"] for _, v in points], [v["psnr"] for _, v in points], "-o", color="tab:blue", ms=4)
        for name, v in points:
            ax.annotate(name, (v["niqe"], v["psnr"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    for name, style in (("bicubic", "--"), ("HR", ":")):
        if "niqe" in scores.get(name, {}):
            ax.axvline(scores[name]["niqe"], color="grey", linestyle=style, label=f"{name} NIQE")
    if {"psnr", "niqe"} <= set(scores.get("bicubic", {})):
        ax.plot(scores["bicubic"]["niqe"], scores["bicubic"]["psnr"], "s", color="grey", label="bicubic")
    ax.set_xlabel("NIQE (lower is better)")
    ax.set_ylabel("PSNR dB (higher is better)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
