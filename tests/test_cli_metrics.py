"""`srcore metrics`: the README's upscale-then-score workflow, name pairing, globs, references holding HR/,
inf for identical images, and errors that name the image."""
import json
from pathlib import Path

import pytest
import torch

from srcore.checkpoint import save_checkpoint
from srcore.cli import main
from srcore.imageio import write_png
from srcore.models import build_generator

SET5 = Path(__file__).parents[1] / "data" / "benchmark" / "Set5"


def run_json(capsys, argv: list[str]) -> dict:
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_readme_workflow_upscale_then_score_prints_a_table(tmp_path: Path, capsys):
    """upscale Set5's LR (babyx4.png ...) into a folder, then score it against HR (baby.png ...)."""
    torch.manual_seed(0)
    model = build_generator("edsr", scale=4, num_feat=4, num_block=1, global_residual=True)
    save_checkpoint(tmp_path / "m.pt", {"arch": "edsr", "arch_args": model.arch_args, "model": model.state_dict()})
    results = tmp_path / "results" / "Set5"
    argv = ["upscale", str(SET5 / "LR_bicubic" / "X4"), "-o", str(results), "--model", str(tmp_path / "m.pt")]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["metrics", str(results), "--reference", str(SET5 / "HR"), "--scale", "4", "--no-niqe"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["image", "PSNR", "SSIM"] and lines[-1].startswith("mean")
    assert [line.split()[0] for line in lines[1:-1]] == [f"{n}x4.png" for n in ("baby", "bird", "butterfly", "head",
                                                                                "woman")]
    assert all(20 < float(line.split()[1]) < 40 for line in lines[1:])


def test_globs_folders_holding_hr_and_suffixes(tmp_path: Path, capsys):
    hr = torch.rand(3, 30, 30)
    write_png(tmp_path / "set" / "HR" / "a.png", hr)
    write_png(tmp_path / "out" / "a_esrgan.png", (hr + 0.01).clamp(0, 1))
    write_png(tmp_path / "out" / "notes_esrgan.png", hr)  # not matched by the glob below
    argv = ["metrics", str(tmp_path / "out" / "a_*.png"), "--reference", str(tmp_path / "set"), "--suffix", "_esrgan",
            "--no-niqe"]
    result = run_json(capsys, argv)
    assert result["reference"] == str(tmp_path / "set" / "HR")
    assert [(i["name"], i["reference"]) for i in result["images"]] == [("a_esrgan.png", "a.png")]
    assert main(["metrics", str(tmp_path / "out" / "*.jpg")]) == 2
    assert "matches this pattern" in capsys.readouterr().err


def test_identical_images_score_inf(capsys):
    result = run_json(capsys, ["metrics", str(SET5 / "HR" / "bird.png"), "--reference", str(SET5 / "HR"), "--no-niqe"])
    assert result["images"][0]["psnr"] == "inf" and result["mean"]["psnr"] == "inf"  # strict JSON has no inf
    assert result["images"][0]["ssim"] == 1.0
    assert main(["metrics", str(SET5 / "HR" / "bird.png"), "--reference", str(SET5 / "HR"), "--no-niqe"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["bird.png", "inf", "1.0000"]


def test_an_image_too_small_for_the_crop_is_named(tmp_path: Path, capsys):
    write_png(tmp_path / "ref" / "tiny.png", torch.rand(3, 6, 6))
    write_png(tmp_path / "out" / "tiny.png", torch.rand(3, 6, 6))
    assert main(["metrics", str(tmp_path / "out"), "--reference", str(tmp_path / "ref"), "--scale", "4"]) == 2
    err = capsys.readouterr().err
    assert "srcore metrics: error: tiny.png: 6x6 is too small to crop 4 pixels from every border" in err
    write_png(tmp_path / "ref" / "thin.png", torch.rand(3, 14, 40))
    write_png(tmp_path / "out2" / "thin.png", torch.rand(3, 14, 40))
    assert main(["metrics", str(tmp_path / "out2"), "--reference", str(tmp_path / "ref"), "--scale", "2"]) == 2
    assert "thin.png: ssim needs images of at least 11x11" in capsys.readouterr().err


def test_metrics_without_reference_gives_niqe_only(capsys):
    result = run_json(capsys, ["metrics", str(SET5 / "HR" / "baby.png")])
    assert set(result["images"][0]) == {"name", "niqe"} and set(result["mean"]) == {"niqe"}


def test_bad_image_is_named_and_exit_is_2(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    assert main(["metrics", str(bad)]) == 2
    assert "broken.png" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [(["--suffix", "x4"], "--suffix needs --reference")])
def test_flags_that_need_a_reference(capsys, extra, message):
    assert main(["metrics", str(SET5 / "HR" / "baby.png"), *extra]) == 2
    assert message in capsys.readouterr().err
