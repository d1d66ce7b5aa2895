"""The `srcore` command line as a whole: fast --help and --version, one exit-code contract, clean warnings;
and `srcore eval` (metrics, upscale, export and info have files of their own)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srcore import cli
from srcore.cli import main
from srcore.checkpoint import save_checkpoint
from srcore.imageio import read_image, write_png
from srcore.models import build_generator

SET5 = Path(__file__).parents[1] / "data" / "benchmark" / "Set5"


def run_json(capsys, argv: list[str]) -> dict:
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def tiny_checkpoint(tmp_path: Path, scale: int = 4, zero_last: bool = True) -> Path:
    """A tiny EDSR with the bicubic residual; with zero_last its output is exactly that residual."""
    torch.manual_seed(0)
    model = build_generator("edsr", scale=scale, num_feat=4, num_block=1, global_residual=True)
    if zero_last:
        torch.nn.init.zeros_(model.conv_last.weight)
        torch.nn.init.zeros_(model.conv_last.bias)
    path = tmp_path / f"model_x{scale}.pt"
    save_checkpoint(path, {"arch": model.name, "arch_args": model.arch_args, "model": model.state_dict()})
    return path


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["upscale", "--help"], ["metrics", "--help"]])
def test_help_and_version_do_not_import_torch(argv: list[str]):
    """torch takes seconds to import; --help and --version must not wait for it."""
    code = ("import sys\nfrom srcore.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    assert e.code == 0, e.code\nprint('torch imported' if 'torch' in sys.modules else 'no torch')")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "no torch"
    if argv == ["--version"]:
        assert done.stdout.startswith("srcore 0.")


def test_command_line_constants_are_the_librarys():
    from srcore import imagewrite, infer, layouts, weights

    assert (cli.PRECISIONS, cli.OUTPUT_FORMATS, cli.LAYOUTS, cli.WEIGHT_SETS) == (
        infer.PRECISIONS, imagewrite.FORMATS, layouts.LAYOUTS, weights.WEIGHT_SETS)


@pytest.mark.parametrize("argv", [
    ["eval", "--model", "bicubic", "--data", "{tmp}/missing", "--scale", "4"],
    ["eval", "--model", "{tmp}/missing.pt", "--data", str(SET5), "--scale", "4"],
    ["metrics", "{tmp}/missing"],
    ["metrics", str(SET5 / "HR"), "--reference", "{tmp}/missing"],
    ["upscale", "{tmp}/missing.png", "-o", "{tmp}/out", "--model", "bicubic"],
    ["upscale", str(SET5 / "HR" / "baby.png"), "-o", "{tmp}/out", "--model", "{tmp}/missing.pt"],
    ["export", "{tmp}/missing.pt", "-o", "{tmp}/m.safetensors"],
    ["info", "{tmp}/missing.pt"],
])
def test_a_missing_input_is_a_bad_command_exit_2_in_every_command(tmp_path: Path, capsys, argv: list[str]):
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"srcore {argv[0]}: error: ") and "missing" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("command", [
    ["eval", "--model", "bicubic", "--data", str(SET5), "--scale", "4"],
    ["upscale", str(SET5 / "HR" / "baby.png"), "-o", "out", "--model", "bicubic"],
])
def test_cuda_without_cuda_is_a_bad_command(capsys, command: list[str]):
    assert main([*command, "--device", "cuda"]) == 2
    assert "--device cuda, but torch sees no CUDA device" in capsys.readouterr().err


def test_bad_flags_exit_2_as_argparse_does():
    with pytest.raises(SystemExit) as exit_:
        main(["upscale", "x.png", "-o", "o", "--model", "bicubic", "--quality", "101"])
    assert exit_.value.code == 2


def test_warnings_are_one_line_naming_the_command(tmp_path: Path, capsys):
    """A small image has no NIQE: said as `srcore metrics: warning: ...`, not as a UserWarning with a path."""
    write_png(tmp_path / "small.png", torch.rand(3, 24, 24))
    assert main(["metrics", str(tmp_path / "small.png")]) == 0
    shown = capsys.readouterr()
    assert shown.err == ("srcore metrics: warning: small.png: 24x24 after cropping is smaller than one 96x96 NIQE "
                         "block: no NIQE for it\n")
    assert shown.out.splitlines()[1].split() == ["small.png", "-"]  # the NIQE column asked for, empty


# --- srcore eval ---------------------------------------------------------------------------------------

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


def test_eval_checkpoint_scores_the_model_it_describes(tmp_path, capsys):
    """A generator whose last conv is zero outputs its bicubic global residual: it scores as bicubic does
    (up to MATLAB's per-pass uint8 rounding, which the baseline applies and the float residual does not)."""
    path = tiny_checkpoint(tmp_path)
    base = ["--data", str(SET5), "--scale", "4", "--no-niqe"]
    bicubic = run_json(capsys, ["eval", "--model", "bicubic", *base])["mean"]
    scored = run_json(capsys, ["eval", "--model", str(path), *base])["mean"]
    assert scored["psnr"] == pytest.approx(bicubic["psnr"], abs=0.02)
    assert scored["ssim"] == pytest.approx(bicubic["ssim"], abs=5e-4)
    assert main(["eval", "--model", str(path), "--data", str(SET5), "--scale", "2"]) == 2
    assert f"srcore eval: error: --model {path} is a x4 model, expected x2" in capsys.readouterr().err


def small_set(tmp_path: Path) -> Path:
    """Two HR crops of Set5 (one of them grey), small enough for many eval runs."""
    for name, box in (("baby.png", (slice(100, 180), slice(60, 156))), ("head.png", (slice(40, 112), slice(40, 104)))):
        rgb = read_image(SET5 / "HR" / name).rgb[:, box[0], box[1]]
        write_png(tmp_path / "small" / name, rgb[:1] if name == "head.png" else rgb)
    return tmp_path / "small"


def test_eval_tiled_and_bf16_runs_score_as_the_whole_image_run(tmp_path: Path, capsys):
    path = tiny_checkpoint(tmp_path, zero_last=False)
    base = ["eval", "--model", str(path), "--data", str(small_set(tmp_path)), "--scale", "4", "--no-niqe",
            "--device", "cpu"]
    tiles = ["--tile", "8", "--tile-pad", "12"]  # pad 12 > this EDSR's receptive radius of 6
    whole, tiled = (run_json(capsys, [*base, *extra])["mean"] for extra in ([], tiles))
    assert tiled["psnr"] == pytest.approx(whole["psnr"], abs=1e-3)
    bf16 = run_json(capsys, [*base, "--precision", "bf16"])["mean"]
    assert bf16["psnr"] == pytest.approx(whole["psnr"], abs=0.05)
    ensemble, ensemble_tiled = (run_json(capsys, [*base, "--self-ensemble", *extra])["mean"] for extra in ([], tiles))
    assert ensemble_tiled["psnr"] == pytest.approx(ensemble["psnr"], abs=1e-3)


def test_eval_save_images_writes_what_it_scored(tmp_path: Path, capsys):
    """--save-images writes each SR as scored: `srcore metrics` of those files gives eval's numbers."""
    data = small_set(tmp_path)
    argv = ["eval", "--model", str(tiny_checkpoint(tmp_path, zero_last=False)), "--data", str(data), "--scale", "4",
            "--no-niqe"]
    scored = run_json(capsys, [*argv, "--save-images", str(tmp_path / "sr")])
    assert sorted(p.name for p in (tmp_path / "sr").iterdir()) == [i["name"] for i in scored["images"]]
    assert read_image(tmp_path / "sr" / "baby.png").rgb.shape[1:] == (80, 96)
    rescored = run_json(capsys, ["metrics", str(tmp_path / "sr"), "--reference", str(data), "--scale", "4",
                                 "--no-niqe"])
    for a, b in zip(scored["images"], rescored["images"]):
        assert a["psnr"] == pytest.approx(b["psnr"], abs=1e-9) and a["ssim"] == pytest.approx(b["ssim"], abs=1e-12)


def test_eval_save_images_into_a_file_is_refused_before_scoring(tmp_path: Path, capsys):
    (tmp_path / "taken").write_text("a file")
    argv = ["eval", "--model", "bicubic", "--data", str(SET5), "--scale", "4", "--save-images", str(tmp_path / "taken")]
    assert main(argv) == 2
    assert f"--save-images {tmp_path / 'taken'}: exists and is not a folder" in capsys.readouterr().err
