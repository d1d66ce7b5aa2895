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
    assert f"srcore eval: error: {path} is a x4 model, expected x2" in capsys.readouterr().err


# --- srcore upscale / export -----------------------------------------------------------------------------

def tiny_checkpoint(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    """A x2 EDSR small enough for tests, with the bicubic residual so its outputs stay inside (0, 1)."""
    from srcore.checkpoint import save_checkpoint
    from srcore.models import build_generator

    torch.manual_seed(0)
    model = build_generator("edsr", scale=2, num_feat=4, num_block=1, global_residual=True).eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"arch": model.name, "arch_args": model.arch_args, "model": model.state_dict()})
    return model, path


def test_upscale_keeps_each_files_mode(tmp_path, capsys):
    """RGBA stays RGBA, 16-bit stays 16-bit, grey stays grey, palette becomes RGB; with tiles smaller than
    the image and a pad >= the receptive radius the pixels are whole-image inference on the output grid."""
    import png
    from PIL import Image as PILImage

    from srcore.evaluate import model_upscaler
    from srcore.imageio import read_image

    model, ckpt = tiny_checkpoint(tmp_path)
    src = tmp_path / "in"
    src.mkdir()
    rgb, alpha = 0.25 + 0.5 * torch.rand(3, 11, 7), torch.rand(1, 11, 7)
    write_png(src / "rgba.png", rgb, alpha)
    write_png(src / "deep.png", rgb, bit_depth=16)
    write_png(src / "grey.png", rgb[:1])
    PILImage.fromarray((rgb.permute(1, 2, 0).numpy() * 255).astype("uint8")).quantize(8).save(src / "pal.png")
    argv = ["upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--tile", "4", "--tile-pad", "6"]
    assert main(argv) == 0
    assert "4 written, 0 skipped, 0 failed" in capsys.readouterr().err
    out = tmp_path / "out"
    modes = {name: PILImage.open(out / f"{name}.png").mode for name in ("rgba", "grey", "pal")}
    assert modes == {"rgba": "RGBA", "grey": "L", "pal": "RGB"}
    width, height, _, info = png.Reader(filename=str(out / "deep.png")).read()
    assert (width, height, info["bitdepth"], info["planes"]) == (14, 22, 16, 3)
    for name, bits in (("deep", 16), ("rgba", 8)):
        expected = model_upscaler(model)(read_image(src / f"{name}.png").rgb)  # whole image at once
        assert (read_image(out / f"{name}.png").rgb - expected).abs().max() <= 0.5 / (2**bits - 1) + 1e-5


def test_upscale_expands_quoted_globs_and_skips_existing_outputs(tmp_path, capsys):
    _, ckpt = tiny_checkpoint(tmp_path)
    for name in ("a.png", "b.png"):
        write_png(tmp_path / name, torch.rand(3, 5, 6))
    (tmp_path / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.png").write_bytes(b"someone's file")
    base = ["upscale", str(tmp_path / "*"), "-o", str(out), "--model", str(ckpt)]
    assert main(base) == 0
    err = capsys.readouterr().err
    assert "b.png exists, skipped" in err and "1 written, 1 skipped, 0 failed" in err
    assert (out / "b.png").read_bytes() == b"someone's file" and (out / "a.png").is_file()
    assert main(base + ["--overwrite"]) == 0
    assert (out / "b.png").read_bytes().startswith(b"\x89PNG")


def test_upscale_names_bad_files_and_finishes_the_batch(tmp_path, capsys):
    _, ckpt = tiny_checkpoint(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    write_png(tmp_path / "good.png", torch.rand(3, 5, 6))
    argv = ["upscale", str(tmp_path / "broken.png"), str(tmp_path / "missing.jpg"), str(tmp_path / "good.png"),
            "-o", str(tmp_path / "out"), "--model", str(ckpt)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"srcore upscale: error: {tmp_path / 'broken.png'}: not a readable image" in err
    assert f"srcore upscale: error: {tmp_path / 'missing.jpg'}: no such file" in err
    assert "1 written, 0 skipped, 2 failed" in err and (tmp_path / "out" / "good.png").is_file()


def test_upscale_refuses_clashes_and_bad_models(tmp_path, capsys):
    _, ckpt = tiny_checkpoint(tmp_path)
    write_png(tmp_path / "a.png", torch.rand(3, 4, 4))
    (tmp_path / "a.jpg").write_bytes((tmp_path / "a.png").read_bytes())  # a PNG under a .jpg name still reads
    model = ["--model", str(ckpt)]
    assert main(["upscale", str(tmp_path / "a.png"), str(tmp_path / "a.jpg"), "-o", str(tmp_path / "o"), *model]) == 2
    assert "a.png" in capsys.readouterr().err
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path), *model]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    not_weights = ["--model", str(tmp_path / "a.png")]
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), *not_weights]) == 2
    assert "could not be read safely" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), *model, "--tile", "-1"])


def test_export_safetensors_rebuilds_the_model(tmp_path, capsys):
    from srcore.weights import load_generator

    model, ckpt = tiny_checkpoint(tmp_path)
    assert main(["export", str(ckpt), "--format", "safetensors", "-o", str(tmp_path / "m.safetensors")]) == 0
    loaded = load_generator(tmp_path / "m.safetensors")
    assert loaded.arch_args == model.arch_args
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    write_png(tmp_path / "a.png", torch.rand(3, 5, 6))
    argv = ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "m.safetensors")]
    assert main(argv) == 0
