"""MATLAB-compatible bicubic resize, checked against the official LR images and independent properties."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from srcore.resize import contributions, downscale, imresize, modcrop, output_size

BENCHMARK = Path(__file__).parents[1] / "data" / "benchmark"
HR_FILES = sorted((BENCHMARK / "Set5" / "HR").glob("*.png")) + sorted((BENCHMARK / "Set14" / "HR").glob("*.png"))


def load_uint8(path: Path) -> torch.Tensor:
    """(C, H, W) float64 in [0, 1] on the 8-bit grid, channels as stored (grey stays one channel)."""
    array = np.asarray(Image.open(path), dtype=np.float64) / 255
    return torch.from_numpy(array).permute(2, 0, 1) if array.ndim == 3 else torch.from_numpy(array)[None]


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("hr_path", HR_FILES, ids=lambda p: f"{p.parents[1].name}-{p.stem}")
def test_matches_official_lr(hr_path: Path, scale: int):
    lr_path = hr_path.parents[1] / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png"
    official = np.asarray(Image.open(lr_path), dtype=np.int64)
    ours = (downscale(load_uint8(hr_path), scale) * 255).round().to(torch.int64)
    ours = ours.permute(1, 2, 0).numpy() if official.ndim == 3 else ours[0].numpy()
    assert ours.shape == official.shape
    diff = np.abs(ours - official)
    # The bound: off by at most 1 on at most 0.2% of pixels ...
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.002
    # ... and in float64 on CPU the per-pass uint8 emulation is in fact bit-exact on every image.
    assert (diff > 0).sum() == 0


def test_skipping_intermediate_rounding_breaks_the_match():
    """Why uint8=True exists: without MATLAB's per-pass rounding, many pixels are off."""
    hr = load_uint8(BENCHMARK / "Set5" / "HR" / "bird.png")
    official = torch.from_numpy(np.asarray(Image.open(BENCHMARK / "Set5" / "LR_bicubic" / "X4" / "birdx4.png"),
                                           dtype=np.float64)).permute(2, 0, 1)
    float_path = (imresize(modcrop(hr, 4), 0.25) * 255).clamp(0, 255).round()
    assert (float_path != official).double().mean() > 0.05


def test_contributions_rows_sum_to_one_and_stay_in_range():
    for in_len, out_len, scale in [(10, 5, 0.5), (9, 3, 1 / 3), (7, 28, 4.0), (5, 7, 1.4)]:
        weights, indices = contributions(in_len, out_len, scale)
        assert torch.allclose(weights.sum(1), torch.ones(out_len, dtype=torch.float64))
        assert indices.min() >= 0 and indices.max() < in_len


def test_constant_image_stays_constant():
    x = torch.full((2, 3, 11, 17), 0.3, dtype=torch.float64)
    for scale in (0.5, 1 / 3, 2.0, 3.7):
        assert torch.allclose(imresize(x, scale), torch.full_like(imresize(x, scale), 0.3))


def test_interior_matches_torch_antialiased_bicubic():
    """torch's antialiased bicubic uses the same a = -0.5 kernel; only the border handling differs."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, 64, 48, dtype=torch.float64)
    for scale in (0.5, 0.25):
        ours = imresize(x, scale)
        theirs = F.interpolate(x, scale_factor=scale, mode="bicubic", antialias=True, align_corners=False)
        border = int(2 / scale)  # output samples whose kernel reaches past the edge
        assert torch.allclose(ours[..., border:-border, border:-border],
                              theirs[..., border:-border, border:-border], atol=1e-12)


def test_upscaling_reproduces_linear_ramps_in_the_interior():
    ramp = torch.arange(20, dtype=torch.float64)[None, :].expand(6, 20)
    up = imresize(ramp, 4.0)  # output sample j sits at input coordinate (j + 0.5) / 4 - 0.5
    expected = (torch.arange(80, dtype=torch.float64) + 0.5) / 4 - 0.5
    assert torch.allclose(up[3, 8:-8], expected[8:-8], atol=1e-12)


def test_output_size_follows_matlab_ceil_without_float_error():
    assert output_size((510, 512), 1 / 3) == (170, 171)
    assert imresize(torch.zeros(510, 300), 1 / 3).shape == (170, 100)
    assert imresize(torch.zeros(2, 5, 7), size=(9, 4)).shape == (2, 9, 4)


def test_batched_equals_one_at_a_time_and_uint8_stays_on_grid():
    torch.manual_seed(1)
    x = torch.randint(0, 256, (3, 3, 12, 10)).double() / 255
    batched = imresize(x, 0.5, uint8=True)
    for i in range(3):
        assert torch.equal(batched[i], imresize(x[i], 0.5, uint8=True))
    assert torch.equal(batched * 255, (batched * 255).round())


def test_float_path_is_differentiable():
    x = torch.rand(1, 1, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, 0.5), (x,))
    assert torch.autograd.gradcheck(lambda t: imresize(t, 2.0), (x,))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="exactly one"):
        imresize(torch.zeros(4, 4), scale=2.0, size=(8, 8))
    with pytest.raises(ValueError, match="scale must be > 0"):
        imresize(torch.zeros(4, 4), scale=-1.0)
    with pytest.raises(ValueError, match="float tensor"):
        imresize(torch.zeros(4, 4, dtype=torch.uint8), scale=2.0)
    with pytest.raises(ValueError, match="smaller than the scale"):
        modcrop(torch.zeros(3, 2, 8), 4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = torch.rand(2, 3, 33, 31, dtype=torch.float64)
    assert torch.allclose(imresize(x.cuda(), 0.25).cpu(), imresize(x, 0.25), atol=1e-12)
