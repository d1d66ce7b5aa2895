"""The shipped models (srcore.release): the release stage writes a checkpoint's EMA generator with its card
and benchmark scores, byte for byte the same on a rerun; `--model srcore:NAME` finds them; the committed ones
are the pipeline's (their scores are metrics/eval.json's) and upscale in a fresh clone."""
from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from srcore.checkpoint import save_generator
from srcore.cli import main
from srcore.models import build_generator
from srcore.release import SHIPPED, benchmark_scores, model_path
from srcore.weights import load_generator, read_spec

ROOT = Path(__file__).resolve().parents[1]
EVAL = {"scale": 2, "Set5": {"bicubic": {"psnr": 30.0}, "psnr": {"psnr": 31.5, "ssim": 0.9}},
        "Set14": {"psnr": {"psnr": 28.1, "ssim": 0.8}}}


def run_release(tmp_path: Path, monkeypatch) -> Path:
    torch.manual_seed(0)
    model = build_generator("edsr", scale=2, num_feat=4, num_block=1)
    save_generator(tmp_path / "psnr.pt", model, 7, card={"card_version": 1, "training": {"steps": 7}})
    (tmp_path / "eval.json").write_text(json.dumps(EVAL))
    monkeypatch.setattr(sys, "argv", ["release", "--model", f"psnr={tmp_path / 'psnr.pt'}", "--scores",
                                      str(tmp_path / "eval.json"), "--out", str(tmp_path / "shipped")])
    runpy.run_path(str(ROOT / "stages" / "release.py"), run_name="__main__")  # bad input: SystemExit(2)
    return tmp_path / "shipped" / "psnr.safetensors"


def test_release_writes_the_ema_generator_with_its_card_and_scores_reproducibly(tmp_path, monkeypatch):
    out = run_release(tmp_path, monkeypatch)
    first = out.read_bytes()
    assert run_release(tmp_path, monkeypatch).read_bytes() == first  # no time, path or revision inside
    card = read_spec(out).card
    assert card["training"] == {"steps": 7}
    assert card["benchmarks"]["Set5"] == {"psnr": 31.5, "ssim": 0.9} and card["benchmarks"]["scale"] == 2
    shipped, trained = load_generator(out), load_generator(tmp_path / "psnr.pt")
    x = torch.rand(1, 3, 9, 7)
    assert torch.equal(shipped(x), trained(x))


def test_benchmark_scores_and_shipped_names_refuse_unknown_ones():
    assert benchmark_scores(EVAL, "psnr") == {"Set5": EVAL["Set5"]["psnr"], "Set14": EVAL["Set14"]["psnr"]}
    with pytest.raises(ValueError, match="no model named 'gan'"):
        benchmark_scores(EVAL, "gan")
    assert model_path("models/psnr.pt") == Path("models/psnr.pt")
    with pytest.raises(ValueError, match=r"srcore:nope: no such shipped model; shipped: srcore:gan, srcore:psnr"):
        model_path("srcore:nope")


@pytest.mark.parametrize("name", ["psnr", "gan"])
def test_committed_models_are_the_pipelines_and_upscale(name, tmp_path):
    """What a fresh clone has before any training: the shipped model's scores are the committed evaluation's,
    and `srcore upscale --model srcore:NAME` runs with it."""
    evaluation = json.loads((ROOT / "metrics" / "eval.json").read_text())
    card = read_spec(SHIPPED / f"{name}.safetensors").card
    assert {key: value for key, value in card["benchmarks"].items() if key not in ("scale", "protocol")} \
        == benchmark_scores(evaluation, name)
    Image.new("RGB", (6, 5), (90, 140, 200)).save(tmp_path / "in.png")
    assert main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--model", f"srcore:{name}",
                 "-q"]) == 0
    assert Image.open(tmp_path / "out" / "in.png").size == (6 * evaluation["scale"], 5 * evaluation["scale"])
