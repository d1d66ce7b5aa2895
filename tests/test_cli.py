"""The `srcore` command line: eval and metrics, JSON and table output, clear errors."""
import json
from pathlib import Path

import pytest
import torch

from srcore.cli import main
from srcore.imageio import write_png

SET5 = Path(__file__).parents[1] / "data" / "benchmark" / "Set5"


def run_json(capsys, argv: list[str]) -> dict:
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_bicubic_json(capsys):
    result = run_json(capsys, ["eval", "--model", "bicubic", "--data", str(SET5), "--scale", "4"])
    assert [image["name"] for image in result["images"]] == ["baby.png", "bird.png", "butterfly.png",
                                                              "head.png", "woman.png"]
    assert set(result["mean"]) == {"psnr", "ssim", "niqe"}
    assert abs(result["mean"]["psnr"] - 28.42) < 0.02
    assert result["channel"] == "y" and result["crop_border"] == 4


def test_eval_rgb_scores_lower_than_y(capsys):
    base = ["eval", "--model", "bicubic", "--data", str(SET5 / "HR"), "--scale", "4", "--no-niqe"]
    y = run_json(capsys, base)["mean"]["psnr"]
    rgb = run_json(capsys, base + ["--rgb"])["mean"]["psnr"]
    assert rgb < y  # chroma is harder to upscale and Y's 16..235 range compresses errors


def test_metrics_pairs_by_name_and_prints_table(tmp_path, capsys):
    hr = torch.rand(3, 24, 24)
    (tmp_path / "ref").mkdir()
    (tmp_path / "out").mkdir()
    write_png(tmp_path / "ref" / "a.png", hr)
    write_png(tmp_path / "out" / "a.png", (hr + 0.02).clamp(0, 1))
    with pytest.warns(UserWarning, match="smaller than one 96x96 NIQE block"):
        result = run_json(capsys, ["metrics", str(tmp_path / "out"), "--reference", str(tmp_path / "ref")])
    assert result["images"][0]["name"] == "a.png" and 25 < result["images"][0]["psnr"] < 40
    assert "niqe" not in result["images"][0] and "niqe" not in result["mean"]
    with pytest.warns(UserWarning):
        assert main(["metrics", str(tmp_path / "out" / "a.png"), "--reference", str(tmp_path / "ref")]) == 0
    table = capsys.readouterr().out
    assert "PSNR" in table and "mean" in table


def test_metrics_without_reference_gives_niqe_only(capsys):
    result = run_json(capsys, ["metrics", str(SET5 / "HR" / "baby.png")])
    assert set(result["images"][0]) == {"name", "niqe"} and set(result["mean"]) == {"niqe"}


def test_bad_image_is_named_and_exit_is_nonzero(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    assert main(["metrics", str(bad)]) == 2
    assert "broken.png" in capsys.readouterr().err


def test_unknown_model_lists_valid_ones():
    with pytest.raises(SystemExit, match="neither a checkpoint file nor one of: bicubic"):
        main(["eval", "--model", "nope", "--data", str(SET5), "--scale", "4"])


def test_eval_checkpoint_scores_the_model_it_describes(tmp_path, capsys):
    """A generator whose last conv is zero outputs its bicubic global residual: it scores as bicubic does
    (up to MATLAB's per-pass uint8 rounding, which the baseline applies and the float residual does not)."""
    from srcore.checkpoint import save_checkpoint
    from srcore.models import build_generator

    model = build_generator("edsr", scale=4, num_feat=4, num_block=1, global_residual=True)
    torch.nn.init.zeros_(model.conv_last.weight)
    torch.nn.init.zeros_(model.conv_last.bias)
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"arch": model.name, "arch_args": model.arch_args, "model": model.state_dict()})
    base = ["--data", str(SET5), "--scale", "4", "--no-niqe"]
    bicubic = run_json(capsys, ["eval", "--model", "bicubic", *base])["mean"]
    scored = run_json(capsys, ["eval", "--model", str(path), *base])["mean"]
    assert scored["psnr"] == pytest.approx(bicubic["psnr"], abs=0.02)
    assert scored["ssim"] == pytest.approx(bicubic["ssim"], abs=5e-4)
    assert main(["eval", "--model", str(path), "--data", str(SET5), "--scale", "2"]) == 2
    assert f"srcore eval: error: checkpoint {path} is a x4 model, expected x2" in capsys.readouterr().err
