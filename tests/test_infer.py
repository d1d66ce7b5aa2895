"""Tiled inference equals whole-image inference once the overlap covers the receptive radius; `srcore upscale`."""
from pathlib import Path

import pytest
import torch

from srcore.checkpoint import save_checkpoint
from srcore.cli import main
from srcore.evaluate import model_upscaler
from srcore.imageio import Image, read_image, write_png
from srcore.infer import tile_spans, upscale_image, upscale_tiled
from srcore.models import build_generator, init_convs
from srcore.resize import imresize

TINY = {"edsr": dict(num_feat=4, num_block=1), "srresnet": dict(num_feat=4, num_block=1, use_bn=False),
        "rrdb": dict(num_feat=4, num_block=1, num_grow_ch=4)}


def tiny(name: str = "edsr", scale: int = 2, global_residual: bool = True, **kwargs) -> torch.nn.Module:
    """A tiny generator whose far receptive field matters: the 0.1-gain init leaves tile seams ~1e-5, too close
    to float noise, so every conv gets gain 0.5. The bicubic residual keeps outputs of mid-grey inputs inside
    [0, 1], where the final clamp cannot hide a difference."""
    torch.manual_seed(0)
    args = {**TINY[name], **kwargs}
    model = build_generator(name, scale=scale, global_residual=global_residual, **args).eval()
    init_convs(model, gain=0.5)
    return model


def mid_grey(*size: int) -> torch.Tensor:
    return 0.25 + 0.5 * torch.rand(3, *size)


def receptive_radius(model: torch.nn.Module, scale: int, size: int = 41) -> int:
    """How far (in LR pixels, Chebyshev) the input pixels reach that one central LR pixel's output block
    depends on, measured from the gradient: the smallest overlap that makes tiling exact."""
    x = torch.rand(1, 3, size, size, requires_grad=True)
    c = size // 2
    model(x)[..., scale * c:scale * (c + 1), scale * c:scale * (c + 1)].sum().backward()
    rows, cols = (x.grad[0].abs().sum(0) > 0).nonzero(as_tuple=True)
    radius = int(max((rows - c).abs().max(), (cols - c).abs().max()))
    assert radius < c, "the probe image is too small to hold the receptive field"
    return radius


def whole(model: torch.nn.Module, lr: torch.Tensor) -> torch.Tensor:
    """Whole-image inference, checked to be mostly unclamped so that comparisons against it have teeth."""
    sr = model_upscaler(model)(lr)
    assert ((sr > 0) & (sr < 1)).float().mean() > 0.95
    return sr


def test_edsr_radius_is_two_per_block_plus_four():
    """conv_first, conv1 and conv2 of the block, conv_body and the upsampler conv: 5 LR pixels; conv_last's
    one HR pixel reaches into the neighbouring LR pixel: 6 = 2 * 1 + 4, as the srcore.infer docstring says."""
    assert receptive_radius(tiny("edsr"), 2) == 6
    assert receptive_radius(tiny("edsr", num_block=2), 2) == 8


@pytest.mark.parametrize("size", [(23, 37), (5, 17), (1, 9)])
def test_tiled_equals_whole_image_with_enough_overlap(size: tuple[int, int]):
    model, lr = tiny("edsr"), mid_grey(*size)
    tiled = upscale_tiled(model, lr, 2, tile=8, overlap=6)
    assert tiled.shape == (3, 2 * size[0], 2 * size[1]) and tiled.dtype == torch.float32
    torch.testing.assert_close(tiled, whole(model, lr), atol=1e-5, rtol=0)


def test_too_small_overlap_leaves_seams():
    """The check above can fail: one pixel short of the radius, tile edges differ from whole-image output."""
    model, lr = tiny("edsr"), mid_grey(23, 37)
    difference = (upscale_tiled(model, lr, 2, tile=8, overlap=5) - whole(model, lr)).abs()
    assert difference.max() > 1e-3


@pytest.mark.parametrize("name,scale,extra", [("edsr", 4, {}), ("edsr", 2, {"global_residual": False}),
                                              ("srresnet", 2, {}), ("srresnet", 3, {}), ("rrdb", 2, {})])
def test_every_generator_tiles_exactly_at_its_radius(name: str, scale: int, extra: dict):
    model = tiny(name, scale, **extra)
    radius = receptive_radius(model, scale)
    lr = mid_grey(19, 26)
    tiled = upscale_tiled(model, lr, scale, tile=7, overlap=radius)
    torch.testing.assert_close(tiled, whole(model, lr), atol=1e-5, rtol=0)


def test_tile_zero_and_tile_larger_than_image_run_whole_image():
    model, lr = tiny("edsr"), mid_grey(9, 13)
    expected = whole(model, lr)
    assert torch.equal(upscale_tiled(model, lr, 2, tile=0, overlap=0), expected)
    assert torch.equal(upscale_tiled(model, lr, 2, tile=64, overlap=16), expected)
    assert tile_spans(13, 0, 4) == [(0, 13, 0, 13)]


def test_tile_spans_cover_each_pixel_once():
    spans = tile_spans(23, 8, 6)
    assert spans == [(0, 8, 0, 14), (8, 16, 2, 22), (16, 23, 10, 23)]


@pytest.mark.parametrize("lr,kwargs,match", [
    (torch.rand(3, 8, 8), dict(tile=-1), "tile must be >= 0"),
    (torch.rand(3, 8, 8), dict(overlap=-2), "overlap must be >= 0"),
    (torch.rand(1, 8, 8), {}, r"RGB \(3, H, W\).*\(1, 8, 8\)"),
    (torch.rand(4, 8, 8), {}, r"\(4, 8, 8\)"),
    (torch.rand(8, 8), {}, r"\(8, 8\)"),
    (torch.zeros(3, 8, 8, dtype=torch.uint8), {}, "uint8"),
])
def test_bad_arguments_are_named(lr: torch.Tensor, kwargs: dict, match: str):
    with pytest.raises(ValueError, match=match):
        upscale_tiled(tiny("edsr"), lr, 2, **kwargs)


def test_wrong_scale_is_an_error():
    with pytest.raises(ValueError, match="not x4"):
        upscale_tiled(tiny("edsr"), mid_grey(8, 8), 4, tile=4, overlap=2)


def test_alpha_is_bicubic_and_stays_in_range():
    alpha = (torch.rand(1, 9, 11) > 0.5).float()  # hard edges make bicubic overshoot before the clamp
    image = Image(rgb=mid_grey(9, 11), alpha=alpha, grey=False, bit_depth=16)
    sr = upscale_image(tiny("edsr"), image, 2, tile=4, overlap=6)
    assert sr.rgb.shape == (3, 18, 22) and sr.alpha.shape == (1, 18, 22)
    assert sr.alpha.min() >= 0 and sr.alpha.max() <= 1 and not sr.grey and sr.bit_depth == 16
    torch.testing.assert_close(sr.alpha, imresize(alpha, scale=2.0).clamp(0, 1))
    assert imresize(alpha, scale=2.0).max() > 1  # the clamp had work to do


def test_grey_stays_grey():
    image = Image(rgb=torch.rand(1, 6, 7).expand(3, -1, -1), alpha=None, grey=True, bit_depth=8)
    sr = upscale_image(tiny("edsr"), image, 2, tile=0)
    assert sr.grey and sr.alpha is None and sr.rgb.shape == (3, 12, 14)
    assert torch.equal(sr.rgb[0], sr.rgb[1]) and torch.equal(sr.rgb[1], sr.rgb[2])


def checkpoint(tmp_path: Path, model: torch.nn.Module) -> Path:
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"arch": model.name, "arch_args": model.arch_args, "model": model.state_dict()})
    return path


def test_cli_upscales_files_and_folders(tmp_path: Path, capsys):
    model = tiny("edsr")
    ckpt = checkpoint(tmp_path, model)
    (tmp_path / "in").mkdir()
    rgb, alpha = mid_grey(11, 7), torch.rand(1, 11, 7)
    write_png(tmp_path / "in" / "a.png", rgb, alpha)
    write_png(tmp_path / "in" / "g.png", rgb[:1])
    assert main(["upscale", str(ckpt), str(tmp_path / "in" / "a.png"), "--out", str(tmp_path / "x8")]) == 0
    out = read_image(tmp_path / "x8" / "a.png")
    assert out.rgb.shape == (3, 22, 14) and out.alpha.shape == (1, 22, 14) and out.bit_depth == 8
    assert "a.png" in capsys.readouterr().out

    argv = ["upscale", str(ckpt), str(tmp_path / "in"), "--out", str(tmp_path / "x16"), "--bits", "16",
            "--tile", "4", "--overlap", "6", "--device", "cpu"]
    assert main(argv) == 0
    a, g = read_image(tmp_path / "x16" / "a.png"), read_image(tmp_path / "x16" / "g.png")
    assert a.bit_depth == 16 and g.bit_depth == 16 and g.grey and not a.grey and g.rgb.shape == (3, 22, 14)
    # Tiles of 4 with overlap 6 >= radius 6: the file is whole-image inference on the 16-bit grid.
    expected = whole(model, read_image(tmp_path / "in" / "a.png").rgb)
    torch.testing.assert_close(a.rgb, expected, atol=0.5 / 65535 + 1e-6, rtol=0)


def test_cli_bad_file_is_named_and_exits_2(tmp_path: Path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    assert main(["upscale", str(checkpoint(tmp_path, tiny("edsr"))), str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "broken.png" in capsys.readouterr().err


def test_cli_refuses_outputs_that_clash(tmp_path: Path, capsys):
    write_png(tmp_path / "a.png", mid_grey(4, 4))
    (tmp_path / "a.jpg").write_bytes((tmp_path / "a.png").read_bytes())  # a PNG under a .jpg name still reads
    ckpt = str(checkpoint(tmp_path, tiny("edsr")))
    assert main(["upscale", ckpt, str(tmp_path / "a.png"), str(tmp_path / "a.jpg"), "--out", str(tmp_path / "o")]) == 2
    assert "a.png" in capsys.readouterr().err
    assert main(["upscale", ckpt, str(tmp_path / "a.png"), "--out", str(tmp_path)]) == 2
    assert "would overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["upscale", ckpt, str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--tile", "-1"])
