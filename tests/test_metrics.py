"""PSNR, SSIM and colour conversions by the SR protocol: hand-computed values and scikit-image as oracle."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.signal import correlate2d
from skimage.metrics import structural_similarity

from srcore.metrics import crop_border, filter_valid, gaussian_window_1d, psnr, rgb_to_grey, rgb_to_y, ssim
from srcore.resize import imresize

SET5 = Path(__file__).parents[1] / "data" / "benchmark" / "Set5"


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang's SSIM in scikit-image: Gaussian sigma 1.5 (11 taps), population covariances."""
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255, channel_axis=-1 if a.ndim == 3 else None)


# --- colour conversions -------------------------------------------------------------------------------

def test_rgb_to_y_known_values():
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], dtype=np.float64)
    assert rgb_to_y(rgb) == pytest.approx(np.array([[235.0, 16.0, 16 + 65.481]]), abs=1e-12)


def test_rgb_to_y_is_the_matlab_formula_unrounded():
    rgb = np.random.default_rng(0).integers(0, 256, (17, 23, 3)).astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = rgb_to_y(rgb)
    assert y.shape == (17, 23) and y.dtype == np.float64
    np.testing.assert_array_equal(y, 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0)
    assert np.any(y != np.round(y))  # kept in double precision, not rounded


def test_rgb_to_grey_is_matlab_rgb2gray():
    rgb = np.random.default_rng(1).integers(0, 256, (9, 8, 3)).astype(np.float64)
    documented = 0.2989 * rgb[..., 0] + 0.5870 * rgb[..., 1] + 0.1140 * rgb[..., 2]
    # The documented weights sum to 0.9999, so they fall short of the exact ones by up to 0.0255 at 255.
    np.testing.assert_allclose(rgb_to_grey(rgb), documented, atol=0.03)
    # The exact coefficients sum to 1 (to rounding), so a grey pixel keeps its value.
    grey = np.repeat(np.arange(0, 256, 15, dtype=np.float64)[None, :, None], 3, axis=2)
    np.testing.assert_allclose(rgb_to_grey(grey), grey[..., 0], atol=1e-12)


@pytest.mark.parametrize("convert", [rgb_to_y, rgb_to_grey])
def test_conversions_reject_non_rgb(convert):
    with pytest.raises(ValueError, match=r"\(4, 5\)"):
        convert(np.zeros((4, 5)))


# --- crop_border ---------------------------------------------------------------------------------------

def test_crop_border():
    img = np.arange(6 * 7 * 3, dtype=np.float64).reshape(6, 7, 3)
    assert crop_border(img, 0) is img
    np.testing.assert_array_equal(crop_border(img, 2), img[2:4, 2:5])
    with pytest.raises(ValueError, match="3 pixels"):
        crop_border(img, 3)
    with pytest.raises(ValueError, match="-1"):
        crop_border(img, -1)


# --- PSNR ----------------------------------------------------------------------------------------------

def test_psnr_of_one_grey_level_offset():
    a = np.random.default_rng(2).uniform(0, 254, (20, 30))
    assert psnr(a, a + 1) == pytest.approx(48.1308036, abs=1e-6)  # 10 log10(255^2 / 1)
    assert psnr(a, a + 1, data_range=1.0) == pytest.approx(0.0, abs=1e-12)


def test_psnr_hand_computed_mse():
    a = np.zeros((2, 2))
    b = np.array([[0.0, 2.0], [0.0, 0.0]])  # MSE = 4 / 4 = 1
    assert psnr(a, b) == pytest.approx(20 * np.log10(255), abs=1e-12)
    b3 = np.zeros((2, 2, 3))
    b3[0, 0] = 4.0  # MSE = 3 * 16 / 12 = 4
    assert psnr(np.zeros((2, 2, 3)), b3) == pytest.approx(10 * np.log10(255**2 / 4), abs=1e-12)


def test_psnr_crop_ignores_the_border():
    a = np.full((10, 12), 100.0)
    b = a.copy()
    b[:2], b[:, -2:] = 0.0, 0.0
    assert np.isfinite(psnr(a, b))
    assert psnr(a, b, crop=2) == float("inf")
    b[5, 5] += 3.0  # one interior difference: MSE = 9 / (6 * 8)
    assert psnr(a, b, crop=2) == pytest.approx(10 * np.log10(255**2 * 48 / 9), abs=1e-12)


def test_psnr_identical_is_inf_and_shapes_must_match():
    a = np.random.default_rng(3).uniform(0, 255, (8, 9, 3))
    assert psnr(a, a.copy()) == float("inf")
    with pytest.raises(ValueError, match=r"\(8, 9, 3\).*\(8, 9\)"):
        psnr(a, a[..., 0])


# --- SSIM ----------------------------------------------------------------------------------------------

def test_valid_filter_is_matlab_filter2_valid():
    img = np.random.default_rng(4).uniform(0, 255, (19, 25))
    taps = gaussian_window_1d()
    window = np.outer(taps, taps)  # fspecial('gaussian', 11, 1.5), normalised
    assert window.sum() == pytest.approx(1.0, abs=1e-15)
    assert window[5, 5] / window[0, 0] == pytest.approx(np.exp(50 / 4.5))
    np.testing.assert_allclose(filter_valid(img, taps), correlate2d(img, window, mode="valid"), atol=1e-11)


def test_ssim_of_identical_images_is_one():
    a = np.random.default_rng(5).uniform(0, 255, (30, 40, 3))
    assert ssim(a, a.copy()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("shape", [(11, 11), (37, 53), (123, 77), (64, 48, 3)])
def test_ssim_matches_skimage_on_random_pairs(shape):
    """skimage filters to 'same' size with reflect padding, then drops (11-1)//2 = 5 pixels per border
    before averaging. What is left is exactly the 'valid' region, whose windows never reach the padding,
    so the two agree to rounding (measured: <= 5e-16), not just to 1e-6."""
    rng = np.random.default_rng(sum(shape))
    a = rng.uniform(0, 255, shape)
    b = np.clip(a + rng.normal(0, 20, shape), 0, 255)
    assert ssim(a, b) == pytest.approx(skimage_ssim(a, b), abs=1e-12)


@pytest.mark.parametrize("name", ["baby", "bird", "butterfly", "head", "woman"])
def test_ssim_matches_skimage_on_real_pairs(name):
    """Set5 HR against its bicubic x4 reconstruction, on Y with a 4-pixel crop, as the protocol scores."""
    hr = read_rgb(SET5 / "HR" / f"{name}.png")
    lr = torch.from_numpy(read_rgb(SET5 / "LR_bicubic" / "X4" / f"{name}x4.png")).permute(2, 0, 1)
    sr = imresize(lr, 4.0).permute(1, 2, 0).numpy().clip(0, 255).round()
    h, w = sr.shape[:2]
    hr_y, sr_y = rgb_to_y(hr[:h, :w]), rgb_to_y(sr)
    ours = ssim(hr_y, sr_y, crop=4)
    assert ours == pytest.approx(skimage_ssim(crop_border(hr_y, 4), crop_border(sr_y, 4)), abs=1e-12)
    assert 0.7 < ours < 0.9  # bicubic x4 on Set5: published 0.81 on average


def test_ssim_of_rgb_is_mean_of_channels():
    rng = np.random.default_rng(6)
    a, b = rng.uniform(0, 255, (2, 20, 21, 3))
    assert ssim(a, b) == pytest.approx(np.mean([ssim(a[..., c], b[..., c]) for c in range(3)]), abs=1e-15)


def test_ssim_errors_name_the_shapes():
    a = np.zeros((20, 20))
    with pytest.raises(ValueError, match=r"\(20, 20\).*\(20, 21\)"):
        ssim(a, np.zeros((20, 21)))
    with pytest.raises(ValueError, match=r"11x11.*\(10, 10\)"):
        ssim(a, a, crop=5)
