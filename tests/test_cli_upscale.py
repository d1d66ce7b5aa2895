"""`srcore upscale`: modes and formats kept or chosen, -o as a file or a folder, outputs checked before any
work, --outscale, --model bicubic, per-file errors, progress on a terminal only."""
import errno
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from srcore import cli_upscale
from srcore.checkpoint import save_checkpoint
from srcore.cli import main
from srcore.evaluate import model_upscaler
from srcore.imageio import read_image, write_png
from srcore.models import build_generator
from srcore.resize import imresize


def tiny_checkpoint(tmp_path: Path, scale: int = 2) -> tuple[torch.nn.Module, Path]:
    """A tiny EDSR small enough for tests, with the bicubic residual so its outputs stay inside (0, 1)."""
    torch.manual_seed(0)
    model = build_generator("edsr", scale=scale, num_feat=4, num_block=1, global_residual=True).eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"arch": model.name, "arch_args": model.arch_args, "model": model.state_dict()})
    return model, path


def test_upscale_keeps_each_files_mode(tmp_path, capsys):
    """RGBA stays RGBA, 16-bit stays 16-bit, grey stays grey, palette becomes RGB; with tiles smaller than
    the image and a pad >= the receptive radius the pixels are whole-image inference on the output grid."""
    import png

    model, ckpt = tiny_checkpoint(tmp_path)
    src = tmp_path / "in"
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


def test_upscale_names_bad_files_and_finishes_the_batch_exit_1(tmp_path, capsys):
    _, ckpt = tiny_checkpoint(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    write_png(tmp_path / "good.png", torch.rand(3, 5, 6))
    write_png(tmp_path / "alpha.png", torch.rand(3, 5, 6), torch.rand(1, 5, 6))
    argv = ["upscale", str(tmp_path / "broken.png"), str(tmp_path / "missing.jpg"), str(tmp_path / "good.png"),
            str(tmp_path / "alpha.png"), "-o", str(tmp_path / "out"), "--model", str(ckpt), "--ext", "jpg"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"srcore upscale: error: {tmp_path / 'broken.png'}: not a readable image" in err
    assert f"srcore upscale: error: {tmp_path / 'missing.jpg'}: no such file" in err
    assert f"srcore upscale: error: {tmp_path / 'alpha.png'}: JPEG holds no alpha channel" in err
    assert "1 written, 0 skipped, 3 failed" in err and (tmp_path / "out" / "good.jpg").is_file()


def test_upscale_refuses_clashes_and_bad_models(tmp_path, capsys):
    _, ckpt = tiny_checkpoint(tmp_path)
    write_png(tmp_path / "a.png", torch.rand(3, 4, 4))
    (tmp_path / "a.jpg").write_bytes((tmp_path / "a.png").read_bytes())  # a PNG under a .jpg name still reads
    model = ["--model", str(ckpt)]
    assert main(["upscale", str(tmp_path / "a.png"), str(tmp_path / "a.jpg"), "-o", str(tmp_path / "o"), *model]) == 2
    assert "a.png" in capsys.readouterr().err
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path), *model]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    for name, what in (("a.png", "is a PNG image, not model weights"), ("m.onnx", "is an ONNX graph")):
        (tmp_path / "m.onnx").write_bytes(b"\x08\x08")
        argv = ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(tmp_path / name)]
        assert main(argv) == 2
        assert what in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), *model, "--tile", "-1"])


@pytest.mark.parametrize("name, fmt", [("big.png", "PNG"), ("big.jpg", "JPEG"), ("big.webp", "WEBP")])
def test_out_is_a_file_for_one_input_with_an_image_name(tmp_path: Path, capsys, name: str, fmt: str):
    _, ckpt = tiny_checkpoint(tmp_path)
    write_png(tmp_path / "a.png", torch.rand(3, 5, 6))
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / name), "--model", str(ckpt)]) == 0
    written = PILImage.open(tmp_path / name)
    assert written.format == fmt and written.size == (12, 10)
    write_png(tmp_path / "b.png", torch.rand(3, 5, 6))
    argv = ["upscale", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(tmp_path / "two.png"), "--model",
            str(ckpt)]
    assert main(argv) == 2 and "names one file but 2 inputs were given" in capsys.readouterr().err
    assert main([*argv[:2], "-o", str(tmp_path / "x.png"), "--ext", "webp", "--model", str(ckpt)]) == 2
    assert "--ext webp but -o" in capsys.readouterr().err


def test_ext_and_quality_pick_format_and_size(tmp_path: Path, capsys):
    _, ckpt = tiny_checkpoint(tmp_path)
    write_png(tmp_path / "in" / "a.png", torch.rand(3, 24, 24))
    sizes = {}
    for quality in (30, 95):
        out = tmp_path / f"q{quality}"
        assert main(["upscale", str(tmp_path / "in"), "-o", str(out), "--model", str(ckpt), "--ext", "webp",
                     "--quality", str(quality)]) == 0
        sizes[quality] = (out / "a.webp").stat().st_size
    assert sizes[30] < sizes[95]
    argv = ["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "j"), "--model", str(ckpt), "--ext", "jpg"]
    assert main([*argv, "--bits", "16"]) == 2 and "holds 8 bits per channel" in capsys.readouterr().err


def test_outscale_resizes_the_models_output(tmp_path: Path):
    model, ckpt = tiny_checkpoint(tmp_path, scale=4)
    write_png(tmp_path / "a.png", 0.25 + 0.5 * torch.rand(3, 10, 14))
    for outscale, size in (("2", (28, 20)), ("3.5", (49, 35)), ("4", (56, 40))):
        out = tmp_path / f"a{outscale}.png"
        assert main(["upscale", str(tmp_path / "a.png"), "-o", str(out), "--model", str(ckpt), "--outscale",
                     outscale]) == 0
        assert PILImage.open(out).size == size
    sr = model_upscaler(model)(read_image(tmp_path / "a.png").rgb)  # x4 (3, 40, 56)
    halved = imresize(sr.double(), scale=0.5)  # any good antialiased x0.5 is close to Lanczos' x0.5
    assert (read_image(tmp_path / "a2.png").rgb.double() - halved).abs().mean() < 0.01


def test_bicubic_is_a_model_too(tmp_path: Path, capsys):
    rgb = torch.rand(3, 9, 11)
    write_png(tmp_path / "a.png", rgb)
    lr = read_image(tmp_path / "a.png").rgb
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"), "--model", "bicubic",
                 "--outscale", "3", "--tile", "4"]) == 0
    expected = imresize(lr.double(), scale=3.0).clamp(0, 1)
    assert (read_image(tmp_path / "b.png").rgb.double() - expected).abs().max() <= 0.5 / 255 + 1e-6
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "c.png"), "--model", "bicubic",
                 "--outscale", "2.5"]) == 2
    assert "bicubic upscales by whole factors" in capsys.readouterr().err


def test_out_folder_that_cannot_be_created_is_one_line(tmp_path: Path, capsys):
    write_png(tmp_path / "a.png", torch.rand(3, 4, 4))
    (tmp_path / "file").write_text("x")
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "file" / "out"), "--model", "bicubic"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"srcore upscale: error: -o {tmp_path / 'file' / 'out'}: cannot create this folder")
    assert "Traceback" not in err


def test_read_only_out_folder_fails_before_any_work(tmp_path: Path, capsys, monkeypatch):
    """The folder is checked before the first image is computed, and the message names it, not a temporary."""
    write_png(tmp_path / "a.png", torch.rand(3, 4, 4))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):  # root writes anyway: have the file system refuse new files there instead
        real_open = os.open

        def refuse(path, flags, *args, **kwargs):
            if Path(path).parent == locked and flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, flags, *args, **kwargs)
        monkeypatch.setattr(os, "open", refuse)
    computed = []
    monkeypatch.setattr(cli_upscale, "upscale_image", lambda *a, **k: computed.append(1))
    try:
        assert main(["upscale", str(tmp_path / "a.png"), "-o", str(locked), "--model", "bicubic"]) == 2
    finally:
        locked.chmod(0o755)
    err = capsys.readouterr().err
    assert err == (f"srcore upscale: error: -o {locked}: cannot write files in this folder (read-only: Permission "
                   f"denied)\n")
    assert computed == [] and list(locked.iterdir()) == []


def test_max_pixels_limits_and_lifts_the_input_size(tmp_path: Path, capsys):
    write_png(tmp_path / "a.png", torch.rand(3, 20, 30))
    argv = ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", "bicubic", "--outscale", "2"]
    assert main([*argv, "--max-pixels", "500"]) == 1
    assert "20 = 600 pixels is more than max_pixels = 500" in capsys.readouterr().err
    assert main([*argv, "--max-pixels", "0"]) == 0


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("quiet", [False, True])
def test_tile_progress_on_a_terminal_unless_quiet(tmp_path: Path, monkeypatch, quiet: bool):
    write_png(tmp_path / "a.png", torch.rand(3, 16, 16))
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    argv = ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"), "--model", "bicubic", "--tile", "4"]
    assert main(argv + (["--quiet"] if quiet else [])) == 0
    shown = terminal.getvalue()
    assert ("0/16" in shown and "tile/s" in shown) != quiet  # a bar over the 4 x 4 tiles, or nothing at all


def test_raw_or_ema_is_said_for_files_holding_both(tmp_path: Path, capsys):
    model, _ = tiny_checkpoint(tmp_path)
    save_checkpoint(tmp_path / "t.pt", {"arch": "edsr", "arch_args": model.arch_args, "model": model.state_dict(),
                                        "ema": model.state_dict()})
    write_png(tmp_path / "a.png", torch.rand(3, 4, 4))
    argv = ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--model", str(tmp_path / "t.pt")]
    assert main([*argv, "--weights", "raw"]) == 0
    assert "holds raw and EMA weights; using raw (--weights ema for the other)" in capsys.readouterr().err


def test_export_safetensors_rebuilds_the_model_with_normal_permissions(tmp_path, capsys):
    from srcore.weights import load_generator

    model, ckpt = tiny_checkpoint(tmp_path)
    assert main(["export", str(ckpt), "--format", "safetensors", "-o", str(tmp_path / "m.safetensors")]) == 0
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o666 & ~mask
    loaded = load_generator(tmp_path / "m.safetensors")
    assert loaded.arch_args == model.arch_args
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    write_png(tmp_path / "a.png", torch.rand(3, 5, 6))
    argv = ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "m.safetensors")]
    assert main(argv) == 0
    np.testing.assert_array_equal(np.asarray(PILImage.open(tmp_path / "o" / "a.png")).shape, (10, 12, 3))


def test_upscale_runs_a_multi_scale_model_at_the_scale_asked_for(tmp_path, capsys):
    """One MDSR checkpoint, every scale it has: --scale picks its head; a scale it lacks is a bad command."""
    torch.manual_seed(0)
    model = build_generator("mdsr", scale=4, scales=[2, 4], num_feat=4, num_block=1).eval()
    ckpt = tmp_path / "mdsr.pt"
    save_checkpoint(ckpt, {"arch": model.name, "arch_args": model.arch_args, "model": model.state_dict()})
    write_png(tmp_path / "in.png", torch.rand(3, 5, 6))
    for scale, size in ((None, (24, 20)), (2, (12, 10)), (4, (24, 20))):
        out = tmp_path / f"x{scale}.png"
        assert main(["upscale", str(tmp_path / "in.png"), "-o", str(out), "--model", str(ckpt)]
                    + ([] if scale is None else ["--scale", str(scale)])) == 0
        assert PILImage.open(out).size == size
    assert main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "x3.png"), "--model", str(ckpt),
                 "--scale", "3"]) == 2
    assert "upscales x2, x4; asked for x3" in capsys.readouterr().err


def test_a_y_channel_model_upscales_rgb_photos_and_onnx_export_says_why_not(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_generator("vdsr", colour="y", scale=2, num_feat=4, num_layers=3).eval()
    ckpt = tmp_path / "vdsr.pt"
    save_checkpoint(ckpt, {"arch": model.name, "arch_args": model.arch_args, "model": model.state_dict()})
    write_png(tmp_path / "in.png", torch.rand(3, 5, 6))
    assert main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", str(ckpt)]) == 0
    assert PILImage.open(tmp_path / "out.png").size == (12, 10) and PILImage.open(tmp_path / "out.png").mode == "RGB"
    assert main(["export", str(ckpt), "-o", str(tmp_path / "vdsr.onnx")]) == 2
    assert "ONNX export of vdsr is not supported" in capsys.readouterr().err
