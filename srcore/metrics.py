"""Full-reference metrics by the standard SR protocol (data/PROVENANCE.md): PSNR and Wang's SSIM.

Every function takes numpy float64 arrays on the [0, 255] scale, (H, W) or (H, W, C), and computes in
float64. Nothing is rounded here: the protocol quantises the SR output to uint8 *before* scoring, and
keeps the Y channel in double precision.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# MATLAB rgb2ycbcr's Y row for [0, 255] inputs (ITU-R BT.601, studio swing: Y in [16, 235]).
Y_FROM_RGB = (65.481, 128.553, 24.966)
# MATLAB rgb2gray: the first row of inv(NTSC YIQ matrix), documented rounded as 0.2989, 0.5870, 0.1140.
GREY_FROM_RGB = (0.298936021293775, 0.587043074451121, 0.114020904255103)

SSIM_WINDOW = 11  # ssim_index.m: fspecial('gaussian', 11, 1.5)
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _check_rgb(rgb: np.ndarray, what: str) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{what} needs an (H, W, 3) RGB array, got shape {rgb.shape}")


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr's Y of an RGB image, unrounded.

    rgb: (H, W, 3) in [0, 255] -> (H, W) float64 in [16, 235].
    """
    _check_rgb(rgb, "rgb_to_y")
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return 16.0 + (Y_FROM_RGB[0] * r + Y_FROM_RGB[1] * g + Y_FROM_RGB[2] * b) / 255.0


def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """MATLAB rgb2gray luma, unrounded (to score an RGB output against a grey HR, and for NIQE).

    rgb: (H, W, 3) in [0, 255] -> (H, W) float64 in [0, 255].
    """
    _check_rgb(rgb, "rgb_to_grey")
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return GREY_FROM_RGB[0] * r + GREY_FROM_RGB[1] * g + GREY_FROM_RGB[2] * b


def crop_border(img: np.ndarray, n: int) -> np.ndarray:
    """Drop n pixels from every border of img: (H, W) or (H, W, C) -> (H - 2n, W - 2n[, C]). A view."""
    if n < 0:
        raise ValueError(f"crop_border needs n >= 0, got {n}")
    h, w = img.shape[:2]
    if 2 * n >= min(h, w):
        raise ValueError(f"cannot crop {n} pixels from every border of an image of shape {img.shape}")
    return img[n:h - n, n:w - n] if n else img


def _prepare_pair(a: np.ndarray, b: np.ndarray, crop: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Shapes checked, borders cropped, both float64."""
    if a.shape != b.shape:
        raise ValueError(f"{metric} needs images of the same shape, got {a.shape} and {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"{metric} needs (H, W) or (H, W, C) images, got shape {a.shape}")
    return crop_border(a, crop).astype(np.float64), crop_border(b, crop).astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray, crop: int = 0, data_range: float = 255.0) -> float:
    """PSNR in dB between a and b: (H, W) or (H, W, C), same shape, values in [0, data_range].

    `crop` pixels are dropped from every border first. inf when the images are identical.
    """
    if not data_range > 0:
        raise ValueError(f"psnr data_range must be > 0, got {data_range}")
    a, b = _prepare_pair(a, b, crop, "psnr")
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10 * np.log10(data_range**2 / mse))


def gaussian_window_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """(size,) normalised Gaussian taps. Its outer product is MATLAB's fspecial('gaussian', size, sigma)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def filter_valid(img: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """MATLAB filter2(taps' * taps, img, 'valid'): (H, W) -> (H - k + 1, W - k + 1), separable, float64."""
    k = taps.size
    rows = sliding_window_view(img, k, axis=0) @ taps  # (H - k + 1, W)
    return sliding_window_view(rows, k, axis=1) @ taps  # (H - k + 1, W - k + 1)


def ssim_map(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """Wang et al.'s ssim_index.m map of two (H, W) planes -> (H - 10, W - 10), 'valid' region only."""
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    taps = gaussian_window_1d()
    mu_a, mu_b = filter_valid(a, taps), filter_valid(b, taps)
    # Variances as E[x^2] - E[x]^2, the population (not sample) form, as ssim_index.m computes them.
    var_a = filter_valid(a * a, taps) - mu_a**2
    var_b = filter_valid(b * b, taps) - mu_b**2
    cov_ab = filter_valid(a * b, taps) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def ssim(a: np.ndarray, b: np.ndarray, crop: int = 0, data_range: float = 255.0) -> float:
    """Mean SSIM (Wang et al., ssim_index.m) of a and b: (H, W) or (H, W, C), same shape.

    `crop` pixels are dropped from every border first; then the 11x11 window must fit in the image.
    No downsampling (unlike MATLAB's later ssim.m). A multi-channel input scores the mean of the
    per-channel SSIMs.
    """
    if not data_range > 0:
        raise ValueError(f"ssim data_range must be > 0, got {data_range}")
    a, b = _prepare_pair(a, b, crop, "ssim")
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} after cropping "
                         f"{crop} pixels per border, got shape {a.shape}")
    if a.ndim == 2:
        return float(ssim_map(a, b, data_range).mean())
    return float(np.mean([ssim_map(a[..., c], b[..., c], data_range).mean() for c in range(a.shape[2])]))
