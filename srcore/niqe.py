"""NIQE (Mittal et al., "Making a 'Completely Blind' Image Quality Analyzer"), as the official MATLAB release.

Follows computequality.m / computefeature.m / estimateaggdparam.m step by step: crop to whole blocks;
at two scales compute MSCN coefficients and 18 AGGD features per block; fit a Gaussian to the block
features and measure its distance to the pristine model with the pooled covariance. Lower is more
natural. All blocks are fitted at once (vectorised): a 500x480 image takes ~0.15 s on CPU,
most of it the half-scale resize.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import correlate
from scipy.special import gamma

from srcore.metrics import crop_border, rgb_to_y
from srcore.resize import imresize

NUM_FEATURES = 36  # 18 per scale
# |pixel - local mean| below this is float64 rounding (~1e-12 on [0, 255]), not contrast.
FLAT_RESIDUE = 1e-9
# estimateaggdparam.m searches alpha over the grid 0.2:0.001:10 for the best moment match.
ALPHA_GRID = 0.2 + 0.001 * np.arange(9801)
R_ALPHA = gamma(2 / ALPHA_GRID) ** 2 / (gamma(1 / ALPHA_GRID) * gamma(3 / ALPHA_GRID))
assert np.all(np.diff(R_ALPHA) > 0)  # monotone, so the nearest grid value can be found by bisection
# computefeature.m: circshift offsets (rows, cols) for horizontal, vertical and both diagonal neighbours.
NEIGHBOUR_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass(frozen=True, eq=False)
class NiqeModel:
    """The pristine multivariate Gaussian and the MSCN window.

    mu: (36,) feature mean; cov: (36, 36) feature covariance; window: (7, 7) normalised Gaussian
    (sigma 7/6) for the local mean and deviation. Arrays are stored read-only.
    """
    mu: np.ndarray
    cov: np.ndarray
    window: np.ndarray

    def __post_init__(self) -> None:
        expected = {"mu": (NUM_FEATURES,), "cov": (NUM_FEATURES, NUM_FEATURES), "window": (7, 7)}
        for name, shape in expected.items():
            array = np.array(getattr(self, name), dtype=np.float64)
            if array.shape != shape:
                raise ValueError(f"NiqeModel.{name} must have shape {shape}, got {array.shape}")
            array.flags.writeable = False
            object.__setattr__(self, name, array)


def load_niqe_model(path: str | Path | None = None) -> NiqeModel:
    """Read a pristine model .npz (keys mu_pris_param (1, 36), cov_pris_param, gaussian_window).

    path=None reads the copy packaged with srcore (srcore/assets/niqe_pris_params.npz), the parameters
    of the official MATLAB release.
    """
    if path is None:
        return packaged_model()
    with np.load(path) as params:
        missing = {"mu_pris_param", "cov_pris_param", "gaussian_window"} - set(params.files)
        if missing:
            raise ValueError(f"NIQE model {path} lacks {sorted(missing)} (has {sorted(params.files)})")
        return NiqeModel(mu=params["mu_pris_param"].reshape(-1), cov=params["cov_pris_param"],
                         window=params["gaussian_window"])


@functools.cache
def packaged_model() -> NiqeModel:
    """The official model shipped as srcore package data, read once (NiqeModel is immutable)."""
    with resources.as_file(resources.files("srcore") / "assets" / "niqe_pris_params.npz") as path:
        return load_niqe_model(path)


def mscn(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of img: (H, W) in [0, 255] -> (H, W).

    imfilter(..., 'replicate') is scipy's mode='nearest'. The abs() guards against a slightly negative
    variance from cancellation; the +1 keeps flat regions finite. Both are in the official code.
    """
    mu = correlate(img, window, mode="nearest")
    sigma = np.sqrt(np.abs(correlate(img * img, window, mode="nearest") - mu * mu))
    centred = img - mu
    # On a flat 7x7 neighbourhood the coefficient is exactly 0, but the 49-tap sum leaves a +-1e-14
    # residue of arbitrary sign. The AGGD fits split samples by sign, so that residue alone moves NIQE
    # by ~1e-3 (baboon: 5.72996 instead of MATLAB's 5.72957). Snapping it to 0 reproduces MATLAB.
    centred[np.abs(centred) < FLAT_RESIDUE] = 0
    return centred / (sigma + 1)


def to_blocks(img: np.ndarray, size: int) -> np.ndarray:
    """Tile img: (nh * size, nw * size) -> (nh * nw, size, size), non-overlapping blocks."""
    nh, nw = img.shape[0] // size, img.shape[1] // size
    return img.reshape(nh, size, nw, size).transpose(0, 2, 1, 3).reshape(nh * nw, size, size)


def nearest_alpha(r: np.ndarray) -> np.ndarray:
    """The grid alpha whose moment ratio is nearest to r (N,), like min((r_gam - r).^2) in MATLAB.

    NaN r (a block without negative or positive values) gets the first grid value, as MATLAB's min
    returns index 1 for an all-NaN vector.
    """
    hi = np.clip(np.searchsorted(R_ALPHA, r), 1, ALPHA_GRID.size - 1)
    lo = hi - 1
    # Ties go to the lower index, as min() returns the first minimum.
    pick = np.where((R_ALPHA[lo] - r) ** 2 <= (R_ALPHA[hi] - r) ** 2, lo, hi)
    return ALPHA_GRID[np.where(np.isnan(r), 0, pick)]


def fit_aggd(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalised Gaussian fits, one per row of samples (N, M) -> alpha, beta_l, beta_r (N,).

    Moment matching as estimateaggdparam.m. A row with no negative (or positive) value gets a NaN
    beta_l (beta_r), which the pooling below drops, as the official nanmean/nancov do.
    """
    neg, pos = samples < 0, samples > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt((samples**2 * neg).sum(1) / neg.sum(1))
        right_std = np.sqrt((samples**2 * pos).sum(1) / pos.sum(1))
        gamma_hat = left_std / right_std
        r_hat = np.abs(samples).mean(1) ** 2 / (samples**2).mean(1)
        r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    alpha = nearest_alpha(r_norm)
    scale = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left_std * scale, right_std * scale


def block_features(blocks: np.ndarray) -> np.ndarray:
    """computefeature.m for every block at once: MSCN blocks (N, s, s) -> features (N, 18).

    Shape of the coefficients (alpha, mean beta), then for each neighbour direction the AGGD of the
    products of neighbouring coefficients (alpha, mean, beta_l, beta_r). Neighbours wrap around inside
    the block, as circshift does.
    """
    flat = blocks.reshape(len(blocks), -1)
    alpha, beta_l, beta_r = fit_aggd(flat)
    columns = [alpha, (beta_l + beta_r) / 2]
    for shift in NEIGHBOUR_SHIFTS:
        pairs = flat * np.roll(blocks, shift, axis=(1, 2)).reshape(len(blocks), -1)
        alpha, beta_l, beta_r = fit_aggd(pairs)
        mean = (beta_r - beta_l) * gamma(2 / alpha) / gamma(1 / alpha)
        columns += [alpha, mean, beta_l, beta_r]
    return np.stack(columns, axis=1)


def half_scale(img: np.ndarray) -> np.ndarray:
    """MATLAB imresize(img, 0.5): bicubic, antialiased, unrounded. (H, W) -> (ceil(H/2), ceil(W/2))."""
    return imresize(torch.from_numpy(img), scale=0.5).numpy()


def niqe_distance(features: np.ndarray, model: NiqeModel) -> float:
    """Distance between the Gaussian fitted to features (N, 36) and the pristine model.

    sqrt((mu_p - mu)^T pinv((cov_p + cov) / 2) (mu_p - mu)), the mean ignoring NaN per feature and the
    covariance over the blocks without NaN (nanmean / nancov). MATLAB's cov of a single observation is 0.
    """
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) == 0:
        raise ValueError(f"NIQE is undefined: none of the {len(features)} blocks has finite features "
                         "(is the image constant?)")
    mu = np.nanmean(features, axis=0)
    cov = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros_like(model.cov)
    diff = model.mu - mu
    return float(np.sqrt(diff @ np.linalg.pinv((model.cov + cov) / 2) @ diff))


def niqe(img: np.ndarray, model: NiqeModel | None = None, crop: int = 0, block_size: int = 96) -> float:
    """NIQE of a grey image as the official MATLAB release computes it; lower is more natural.

    img: (H, W) float64 in [0, 255], at least block_size x block_size after dropping `crop` pixels
    per border; the rest is cropped top-left to whole blocks. model: the pristine model (None: the
    packaged official one). block_size: even; the official and recommended value is 96.

    Which plane to pass: NIQE is defined on 8-bit images (the MATLAB code reads uint8), so pass
    *integer* values. For an RGB image that is rgb2ycbcr's Y rounded to integers, as MATLAB's
    rgb2ycbcr on uint8 returns it: `niqe_of_rgb` does this. It reproduces the published reference
    (Set14 baboon: MATLAB 5.72957338, here 5.7295739); the unrounded Y gives 5.6359 and rgb2gray
    (what computequality.m applies to an RGB input) 5.7496, so neither is what the tables report.
    A grey image is passed as its grey values.
    """
    model = packaged_model() if model is None else model
    if img.ndim != 2:
        raise ValueError(f"niqe needs an (H, W) grey or Y image, got shape {img.shape}; "
                         "use niqe_of_rgb for RGB images")
    if block_size < 2 or block_size % 2:
        raise ValueError(f"niqe block_size must be an even number >= 2, got {block_size}")
    img = crop_border(np.asarray(img, dtype=np.float64), crop)
    nh, nw = img.shape[0] // block_size, img.shape[1] // block_size
    if nh == 0 or nw == 0:
        raise ValueError(f"niqe needs an image of at least one {block_size}x{block_size} block, "
                         f"got shape {img.shape} (after cropping {crop} pixels per border)")
    img = img[: nh * block_size, : nw * block_size]
    features = []
    for size in (block_size, block_size // 2):  # full and half scale
        features.append(block_features(to_blocks(mscn(img, model.window), size)))
        img = half_scale(img)
    return niqe_distance(np.concatenate(features, axis=1), model)


def niqe_of_rgb(rgb: np.ndarray, model: NiqeModel | None = None, crop: int = 0, block_size: int = 96) -> float:
    """NIQE of an RGB image (H, W, 3) in [0, 255], on its Y channel rounded to integers (see `niqe`)."""
    # floor(y + 0.5): MATLAB rounds half away from zero (np.round would round half to even); Y >= 16.
    return niqe(np.floor(rgb_to_y(rgb) + 0.5), model, crop, block_size)
