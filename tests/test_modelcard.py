"""Model cards: written by the training stages and by export (checkpoint key, safetensors metadata, ONNX
metadata), shown by `srcore info` for those files and derived for files without one."""
from __future__ import annotations

import json
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from srcore.checkpoint import load_checkpoint, save_checkpoint, save_generator
from srcore.cli import main
from srcore.config import load_params, merged
from srcore.modelcard import build_card
from srcore.models import build_generator
from srcore.patches import write_images

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    lr: float = 1e-3
    milestones: tuple[int, ...] = (2, 4)
    data: Path = Path("x.h5")


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_generator("edsr", scale=2, num_feat=4, num_block=1).eval()


def test_card_records_model_training_data_scores_and_code():
    model = tiny_model()
    card = build_card(model, recipe="pretrain", steps=7, params={"pretrain": Settings()},
                      data={"train": Path("t.h5")}, scores={"val": {"psnr": torch.tensor(28.5)}})
    assert card["arch"] == "edsr" and card["scale"] == 2 and card["arch_args"] == model.arch_args
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert card["training"] == {"recipe": "pretrain", "steps": 7,
                                "params": {"pretrain": {"lr": 1e-3, "milestones": [2, 4], "data": "x.h5"}}}
    assert card["data"] == {"train": "t.h5"} and card["scores"] == {"val": {"psnr": 28.5}}
    assert set(card["code"]) == {"srcore", "git"} and card["code"]["srcore"]
    json.dumps(card)  # plain JSON throughout
    with pytest.raises(TypeError, match="object value"):
        build_card(model, data={"x": object()})


def info(capsys, path: Path, *extra: str) -> dict:
    assert main(["info", str(path), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_card_travels_from_checkpoint_to_safetensors_pth_and_onnx(tmp_path: Path, capsys):
    model = tiny_model()
    save_generator(tmp_path / "psnr.pt", model, step=7, card=build_card(model, recipe="pretrain", steps=7,
                                                                        scores={"val": {"psnr": 30.0}}))
    shown = info(capsys, tmp_path / "psnr.pt")
    assert shown["training"]["recipe"] == "pretrain" and shown["scores"] == {"val": {"psnr": 30.0}}
    assert shown["step"] == 7 and shown["layout"] == "srcore" and "derived" not in shown
    for name in ("m.safetensors", "m.pth", "m.onnx"):
        assert main(["export", str(tmp_path / "psnr.pt"), "-o", str(tmp_path / name)]) == 0
        capsys.readouterr()
        card = info(capsys, tmp_path / name)
        assert card["training"]["recipe"] == "pretrain" and card["scores"] == {"val": {"psnr": 30.0}}, name
        assert card["exported"]["from"] == str(tmp_path / "psnr.pt") and card["exported"]["layout"] == "srcore"
    onnx = info(capsys, tmp_path / "m.onnx")["onnx"]
    assert "[0, 1]" in onnx["srcore.input"] and "not clamped" in onnx["srcore.output"]


def test_files_without_a_card_get_a_derived_one(tmp_path: Path, capsys):
    model = tiny_model()
    save_checkpoint(tmp_path / "old.pt", {"arch": "edsr", "arch_args": model.arch_args, "model": model.state_dict()})
    card = info(capsys, tmp_path / "old.pt")
    assert card["derived"] is True and card["arch"] == "edsr" and card["scale"] == 2
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert main(["info", str(tmp_path / "old.pt")]) == 0
    text = capsys.readouterr().out
    assert "arch: edsr" in text and "scale: 2" in text and "arch_args: {" in text


def test_training_checkpoint_says_which_set_it_shows(tmp_path: Path, capsys):
    model = tiny_model()
    save_checkpoint(tmp_path / "t.pt", {"arch": "edsr", "arch_args": model.arch_args, "model": model.state_dict(),
                                        "ema": model.state_dict(), "step": 3})
    assert info(capsys, tmp_path / "t.pt", "--weights", "raw")["weights"] == "raw and EMA (showing raw)"


def run_script(monkeypatch, stage: str, *args: object) -> None:
    """stages/<stage>.py in this process, as `python stages/<stage>.py args...`; torch state restored."""
    monkeypatch.setattr(sys, "argv", [f"stages/{stage}.py", *map(str, args)])
    grad, threads = torch.is_grad_enabled(), torch.get_num_threads()
    try:
        with torch.random.fork_rng(devices=[]):
            runpy.run_path(str(ROOT / "stages" / f"{stage}.py"), run_name="__main__")
    finally:
        torch.set_grad_enabled(grad)
        torch.set_num_threads(threads)


def test_pretrain_stage_writes_the_card(tmp_path: Path, monkeypatch):
    """The hook in the training engine: the model file the stage writes carries recipe, params, data and the
    last validation score it logged, and nothing that changes with the checkout (the same run gives the
    same file on any commit)."""
    images = sorted((ROOT / "data" / "raw" / "train" / "T91").glob("*.png"))[:2]
    write_images(images[:1], tmp_path / "train.h5", scale=2, seed=3)  # whole, as prepare writes training images
    write_images(images[1:], tmp_path / "val.h5", scale=2, tile=32, seed=3)
    params = merged(load_params(ROOT / "params.yaml"), {
        "common": {"seed": 3, "scale": 2},
        "runtime": {"device": "cpu", "precision": "fp32", "channels_last": False, "kernels": "torch"},
        "pretrain": {"generator": "edsr", "generator_args": {"num_feat": 4, "num_block": 1}, "steps": 2,
                     "batch_size": 2, "patch_size": 16, "log_every": 1, "val_every": 2, "ckpt_every": 2}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    run_script(monkeypatch, "pretrain", "--params", "params.yaml", "--train", "train.h5", "--val", "val.h5",
               "--runs", "runs", "--out", "psnr.pt", "--live", "live")
    card = load_checkpoint(tmp_path / "psnr.pt")["card"]
    assert card["training"]["recipe"] == "pretrain" and card["training"]["steps"] == 2
    assert card["training"]["params"]["pretrain"]["generator_args"]["num_feat"] == 4
    assert card["training"]["params"]["common"] == {"seed": 3, "scale": 2}
    assert card["data"]["train"] == "train.h5" and card["data"]["train_fingerprint"]
    assert card["scores"]["val"]["psnr"] > 0 and card["arch"] == "edsr"
    assert set(card["code"]) == {"srcore", "fingerprint"}  # no git revision: not a function of the checkout
