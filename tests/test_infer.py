"""Tiled inference equals whole-image inference once the tile pad covers the receptive radius; `srcore upscale`."""
from pathlib import Path

import numpy as np
import pytest
import torch

from srcore.checkpoint import save_checkpoint
from srcore.evaluate import model_upscaler
from srcore.imageio import Image
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
    depends on, measured from the gradient: the smallest pad that makes tiling exact."""
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
def test_tiled_equals_whole_image_with_enough_pad(size: tuple[int, int]):
    model, lr = tiny("edsr"), mid_grey(*size)
    tiled = upscale_tiled(model, lr, 2, tile=8, pad=6)
    assert tiled.shape == (3, 2 * size[0], 2 * size[1]) and tiled.dtype == torch.float32
    torch.testing.assert_close(tiled, whole(model, lr), atol=1e-5, rtol=0)


def test_too_small_pad_leaves_seams():
    """The check above can fail: one pixel short of the radius, tile edges differ from whole-image output."""
    model, lr = tiny("edsr"), mid_grey(23, 37)
    difference = (upscale_tiled(model, lr, 2, tile=8, pad=5) - whole(model, lr)).abs()
    assert difference.max() > 1e-3


@pytest.mark.parametrize("name,scale,extra", [("edsr", 4, {}), ("edsr", 2, {"global_residual": False}),
                                              ("srresnet", 2, {}), ("srresnet", 3, {}), ("rrdb", 2, {})])
def test_every_generator_tiles_exactly_at_its_radius(name: str, scale: int, extra: dict):
    model = tiny(name, scale, **extra)
    radius = receptive_radius(model, scale)
    lr = mid_grey(19, 26)
    tiled = upscale_tiled(model, lr, scale, tile=7, pad=radius)
    torch.testing.assert_close(tiled, whole(model, lr), atol=1e-5, rtol=0)


def test_tile_zero_and_tile_larger_than_image_run_whole_image():
    model, lr = tiny("edsr"), mid_grey(9, 13)
    at_once = upscale_tiled(model, lr, 2, tile=0, pad=0)
    assert torch.equal(upscale_tiled(model, lr, 2, tile=64, pad=16), at_once)  # one tile: the same call
    torch.testing.assert_close(at_once, whole(model, lr), atol=1e-6, rtol=0)  # channels_last vs NCHW rounding
    assert tile_spans(13, 0, 4) == [(0, 13, 0, 13)]


def test_tile_spans_cover_each_pixel_once():
    spans = tile_spans(23, 8, 6)
    assert spans == [(0, 8, 0, 14), (8, 16, 2, 22), (16, 23, 10, 23)]


@pytest.mark.parametrize("lr,kwargs,match", [
    (torch.rand(3, 8, 8), dict(tile=-1), "tile must be >= 0"),
    (torch.rand(3, 8, 8), dict(pad=-2), "tile pad must be >= 0"),
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
        upscale_tiled(tiny("edsr"), mid_grey(8, 8), 4, tile=4, pad=2)


def grid(x: torch.Tensor, bits: int = 8) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W, C) float64 samples round(x * (2**bits - 1))."""
    return (x.double().clamp(0, 1) * (2**bits - 1)).round().permute(1, 2, 0).numpy()


def test_image_samples_are_whole_image_inference_quantised_per_tile():
    """RGB + alpha through upscale_image with small tiles: the RGB samples are whole-image inference on the
    8-bit grid, the alpha samples the whole-image MATLAB bicubic (clamped), each within one level (a value
    within float noise of a .5 tie may round either way)."""
    model, lr = tiny("edsr"), mid_grey(13, 17)
    alpha = (torch.rand(1, 13, 17) > 0.5).float()  # hard edges make bicubic overshoot before the clamp
    samples = upscale_image(model, Image(rgb=lr, alpha=alpha, grey=False, bit_depth=8), 2, tile=5, pad=6)
    assert samples.dtype == np.uint8 and samples.shape == (26, 34, 4)
    rgb_diff = np.abs(samples[..., :3] - grid(whole(model, lr)))
    alpha_diff = np.abs(samples[..., 3:] - grid(imresize(alpha, scale=2.0)))
    assert rgb_diff.max() <= 1 and (rgb_diff == 0).mean() > 0.99
    assert alpha_diff.max() <= 1 and (alpha_diff == 0).mean() > 0.99
    assert imresize(alpha, scale=2.0).max() > 1  # the clamp had work to do


def test_sixteen_bit_in_sixteen_bit_out_unless_told():
    image = Image(rgb=mid_grey(6, 5), alpha=torch.rand(1, 6, 5), grey=False, bit_depth=16)
    model = tiny("edsr")
    sixteen = upscale_image(model, image, 2, tile=0)
    assert sixteen.dtype == np.uint16 and sixteen.shape == (12, 10, 4)
    np.testing.assert_array_equal(sixteen[..., :3], grid(whole(model, image.rgb), 16))
    eight = upscale_image(model, image, 2, tile=0, bit_depth=8)
    assert eight.dtype == np.uint8 and np.abs(eight / 255.0 - sixteen / 65535.0).max() <= 0.5 / 255 + 1e-6


def test_grey_stays_grey_with_its_alpha():
    image = Image(rgb=torch.rand(1, 6, 7).expand(3, -1, -1), alpha=torch.rand(1, 6, 7), grey=True, bit_depth=8)
    samples = upscale_image(tiny("edsr"), image, 2, tile=4)
    assert samples.shape == (12, 14, 2)  # LA
    expected = grid(whole(tiny("edsr"), image.rgb).mean(0, keepdim=True))
    assert np.abs(samples[..., :1] - expected).max() <= 1


def test_bf16_precision_is_close_to_fp32():
    model, lr = tiny("edsr"), mid_grey(12, 10)
    bf16 = upscale_tiled(model, lr, 2, tile=0, precision="bf16")
    fp32 = upscale_tiled(model, lr, 2, tile=0, precision="fp32")
    difference = (bf16 - fp32).abs()
    assert 0 < difference.max() < 0.05  # bf16 ran (results differ) and stayed close
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        upscale_tiled(model, lr, 2, precision="fp16")


def test_nchw_memory_format_gives_the_channels_last_result():
    model, lr = tiny("edsr"), mid_grey(12, 10)
    nchw = upscale_tiled(model, lr, 2, tile=5, pad=4, channels_last=False)
    torch.testing.assert_close(nchw, upscale_tiled(model, lr, 2, tile=5, pad=4), rtol=0, atol=1e-5)


def checkpoint(tmp_path: Path, model: torch.nn.Module) -> Path:
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"arch": model.name, "arch_args": model.arch_args, "model": model.state_dict()})
    return path


def test_bicubic_model_tiles_exactly_and_is_matlab_bicubic():
    from srcore.infer import Bicubic

    lr = torch.rand(3, 13, 9)
    expected = imresize(lr, scale=3.0).clamp(0, 1)
    torch.testing.assert_close(upscale_tiled(Bicubic(3), lr, 3, tile=4, pad=2), expected, atol=1e-6, rtol=0)


def test_tiled_upscaler_is_the_whole_image_upscaler_with_and_without_self_ensemble():
    from srcore.infer import tiled_upscaler

    model = tiny("edsr", scale=2)
    lr = torch.rand(3, 9, 12)  # full range: outputs overshoot [0, 1], so where the clamp goes matters
    with torch.no_grad():
        assert ((model(lr[None]) < 0) | (model(lr[None]) > 1)).float().mean() > 0.05
    for ensemble in (False, True):
        expected = model_upscaler(model, self_ensemble=ensemble)(lr)
        tiled = tiled_upscaler(model, tile=7, pad=8, self_ensemble=ensemble)(lr)
        torch.testing.assert_close(tiled, expected, atol=2e-6, rtol=0)


@pytest.mark.parametrize("dtype, top", [(np.uint8, 255), (np.uint16, 65535)])
def test_rescale_samples_keeps_dtype_flat_areas_and_range(dtype, top):
    from srcore.infer import rescale_samples

    flat = np.full((20, 30, 2), top // 3, dtype=dtype)
    out = rescale_samples(flat, 13, 7)
    assert out.dtype == dtype and out.shape == (7, 13, 2) and (out == top // 3).all()
    edges = np.zeros((16, 16, 1), dtype=dtype)
    edges[:, 8:] = top  # Lanczos rings at an edge: the ringing must be clipped, not wrapped around
    up = rescale_samples(edges, 37, 37)
    assert up.min() == 0 and up.max() == top
    with pytest.raises(ValueError, match="at least 1x1"):
        rescale_samples(flat, 0, 5)
