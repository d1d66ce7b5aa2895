"""The evaluate stage's scoring of the lineage's models: a multi-scale model is scored at each of its scales
beside bicubic, a Y model like any RGB model; a model without common.scale is refused by name."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from srcore.checkpoint import save_generator
from srcore.evaluate import bicubic_upscaler, evaluate_dataset, mean_scores, model_upscaler
from srcore.imageio import read_image
from srcore.models import build_generator
from srcore.multiscale import select_scale
from srcore.scoreboard import score_models

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory) -> Path:
    """A benchmark folder with one tiny set: two 36x30 crops of Set5 images (36 and 30: multiples of 2, 3)."""
    root = tmp_path_factory.mktemp("benchmark")
    (root / "tiny" / "HR").mkdir(parents=True)
    for name in ("baby", "bird"):
        rgb = read_image(ROOT / "data" / "benchmark" / "Set5" / "HR" / f"{name}.png").rgb[:, 40:76, 60:90]
        Image.fromarray((rgb * 255).round().byte().permute(1, 2, 0).numpy()).save(root / "tiny" / "HR" / f"{name}.png")
    return root


def saved(tmp_path: Path, name: str, **kwargs) -> Path:
    torch.manual_seed(0)
    path = tmp_path / f"{name}.pt"
    save_generator(path, build_generator(name, **kwargs).eval(), step=1)
    return path


def score(models: dict[str, Path], benchmark: Path, plots: Path, scale: int = 2) -> dict:
    return score_models(models, benchmark, ("tiny",), plots, scale=scale, rgb=False, niqe=False,
                        self_ensemble=False, crop_size=12)


def test_a_multi_scale_model_is_scored_at_each_of_its_scales(tmp_path: Path, benchmark: Path):
    models = {"mdsr": saved(tmp_path, "mdsr", scale=2, scales=(2, 3), num_feat=4, num_block=1),
              "vdsr-y": saved(tmp_path, "vdsr", scale=2, num_feat=4, num_layers=3),
              "edsr": saved(tmp_path, "edsr", scale=2, num_feat=4, num_block=1)}
    results = score(models, benchmark, tmp_path / "plots")
    assert list(results) == ["tiny", "tiny x3"]
    assert list(results["tiny"]) == ["bicubic", "mdsr", "vdsr-y", "edsr"]
    assert list(results["tiny x3"]) == ["bicubic", "mdsr"]  # only the models with a x3
    mdsr = build_generator("mdsr", scale=2, scales=(2, 3), num_feat=4, num_block=1)
    mdsr.load_state_dict(torch.load(models["mdsr"], weights_only=True)["model"])
    data = benchmark / "tiny"
    for s, name in ((2, "tiny"), (3, "tiny x3")):
        assert results[name]["mdsr"] == mean_scores(evaluate_dataset(model_upscaler(select_scale(mdsr, s)), data,
                                                                     s, with_niqe=False))
        assert results[name]["bicubic"] == mean_scores(evaluate_dataset(bicubic_upscaler(s), data, s,
                                                                        with_niqe=False))
    assert (tmp_path / "plots" / "crops" / "tiny_x3.png").is_file() and (tmp_path / "plots" / "psnr.png").is_file()


def test_a_model_without_the_common_scale_is_named(tmp_path: Path, benchmark: Path):
    path = saved(tmp_path, "mdsr", scale=3, scales=(3, 4), num_feat=4, num_block=1)
    with pytest.raises(ValueError, match=r"mdsr.pt is a x3/x4 model, expected x2"):
        score({"m": path}, benchmark, tmp_path / "plots")
