"""NIQE against the official MATLAB value, the per-block fits against a plain loop, and its edge cases."""
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter
from scipy.special import gamma

from srcore.metrics import rgb_to_grey, rgb_to_y
from srcore.niqe import ALPHA_GRID, NiqeModel, fit_aggd, load_niqe_model, niqe, niqe_of_rgb

DATA = Path(__file__).parents[1] / "data"
# Official MATLAB release, R2021a, as published with BasicSR's re-implementation.
BABOON_MATLAB = 5.72957338


@pytest.fixture(scope="module")
def model() -> NiqeModel:
    return load_niqe_model()


@pytest.fixture(scope="module")
def baboon() -> np.ndarray:
    """Set14 baboon (480 rows x 500 cols) cropped top-left to multiples of 12: (480, 492, 3) in [0, 255]."""
    rgb = np.asarray(Image.open(DATA / "benchmark" / "Set14" / "HR" / "baboon.png").convert("RGB"), dtype=np.float64)
    return rgb[:480, :492]


# --- the pristine model ----------------------------------------------------------------------------------

def test_packaged_model_is_the_official_one(model):
    official = load_niqe_model(DATA / "niqe" / "niqe_pris_params.npz")
    for name in ("mu", "cov", "window"):
        np.testing.assert_array_equal(getattr(model, name), getattr(official, name))
    assert model.mu.shape == (36,) and model.cov.shape == (36, 36) and model.window.shape == (7, 7)
    np.testing.assert_array_equal(model.cov, model.cov.T)
    assert model.window.sum() == pytest.approx(1.0)
    assert not model.mu.flags.writeable


def test_model_file_errors_name_the_problem(tmp_path, model):
    path = tmp_path / "bad.npz"
    np.savez(path, mu_pris_param=model.mu, cov_pris_param=model.cov)
    with pytest.raises(ValueError, match="gaussian_window"):
        load_niqe_model(path)
    with pytest.raises(ValueError, match=r"cov must have shape \(36, 36\), got \(35, 35\)"):
        NiqeModel(mu=model.mu, cov=model.cov[:35, :35], window=model.window)


# --- the reference value --------------------------------------------------------------------------------

def test_baboon_matches_matlab(baboon, model):
    """The key test: the protocol's tolerance, and in fact MATLAB's value to 1e-6 (measured 5.7295739)."""
    value = niqe_of_rgb(baboon, model)
    assert value == pytest.approx(BABOON_MATLAB, abs=2e-3)
    assert value == pytest.approx(BABOON_MATLAB, abs=1e-6)


def test_only_the_rounded_y_channel_reproduces_matlab(baboon, model):
    """Which plane the reference was computed on: Y rounded to integers (rgb2ycbcr on uint8)."""
    y = rgb_to_y(baboon)
    assert niqe(np.floor(y + 0.5), model) == pytest.approx(BABOON_MATLAB, abs=1e-6)
    assert abs(niqe(y, model) - BABOON_MATLAB) > 0.05  # unrounded Y: 5.6359
    assert abs(niqe(np.floor(rgb_to_grey(baboon) + 0.5), model) - BABOON_MATLAB) > 0.01  # rgb2gray: 5.7496


def test_flat_neighbourhood_residue_does_not_move_the_score(baboon, model):
    """Flat 7x7 neighbourhoods give MSCN = 0 up to a +-1e-14 residue whose sign the AGGD split would see."""
    y = np.floor(rgb_to_y(baboon) + 0.5)
    noise = np.random.default_rng(0).standard_normal(y.shape) * 1e-12
    assert niqe(y + noise, model) == pytest.approx(niqe(y, model), abs=1e-9)


def test_runs_well_under_a_second(baboon, model):
    y = np.floor(rgb_to_y(baboon) + 0.5)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        niqe(y, model)
        times.append(time.perf_counter() - start)
    assert min(times) < 1.0


# --- behaviour -----------------------------------------------------------------------------------------

def test_blurring_raises_niqe(baboon, model):
    """Blur of sigma 2 and 3 pixels: 7.67 and 10.29 against 5.73. (A light blur, sigma 1, *lowers*
    baboon's score to 4.71: its fur is busier than the pristine images the model was fitted on.)"""
    y = np.floor(rgb_to_y(baboon) + 0.5)
    original, blur2, blur3 = (niqe(gaussian_filter(y, s), model) if s else niqe(y, model) for s in (0, 2, 3))
    assert original + 1.0 < blur2 < blur3


def test_crop_and_partial_blocks(baboon, model):
    y = np.floor(rgb_to_y(baboon) + 0.5)
    assert niqe(y, model, crop=7) == pytest.approx(niqe(y[7:-7, 7:-7], model), abs=1e-12)
    # Pixels beyond whole blocks (bottom/right) are dropped, as computequality.m does.
    assert niqe(y[:200, :300], model) == pytest.approx(niqe(y[:192, :288], model), abs=1e-12)


def test_single_block_image_uses_the_pristine_covariance(baboon, model):
    """MATLAB's covariance of one observation is 0, so one block still gives a finite score."""
    assert np.isfinite(niqe(np.floor(rgb_to_y(baboon[:96, :96]) + 0.5), model))


def test_fit_aggd_matches_a_plain_loop():
    """The vectorised fits (bisection on the monotone ratio) equal estimateaggdparam.m's full-grid argmin."""
    rng = np.random.default_rng(1)
    samples = np.concatenate([rng.standard_normal((4, 500)), rng.laplace(size=(4, 500)),
                              rng.standard_normal((2, 500)) ** 3 + 0.3])
    r_grid = gamma(2 / ALPHA_GRID) ** 2 / (gamma(1 / ALPHA_GRID) * gamma(3 / ALPHA_GRID))
    alpha, beta_l, beta_r = fit_aggd(samples)
    for i, x in enumerate(samples):
        left, right = np.sqrt(np.mean(x[x < 0] ** 2)), np.sqrt(np.mean(x[x > 0] ** 2))
        g = left / right
        r = np.mean(np.abs(x)) ** 2 / np.mean(x**2) * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
        a = ALPHA_GRID[np.argmin((r_grid - r) ** 2)]
        assert alpha[i] == a
        assert beta_l[i] == pytest.approx(left * np.sqrt(gamma(1 / a) / gamma(3 / a)), rel=1e-12)
        assert beta_r[i] == pytest.approx(right * np.sqrt(gamma(1 / a) / gamma(3 / a)), rel=1e-12)


# --- errors --------------------------------------------------------------------------------------------

def test_too_small_image_names_its_shape(model):
    with pytest.raises(ValueError, match=r"96x96 block, got shape \(95, 200\)"):
        niqe(np.zeros((95, 200)), model)
    with pytest.raises(ValueError, match=r"\(90, 90\).*cropping 5"):
        niqe(np.zeros((100, 100)), model, crop=5)


def test_bad_arguments(model):
    with pytest.raises(ValueError, match=r"\(96, 96, 3\).*niqe_of_rgb"):
        niqe(np.zeros((96, 96, 3)), model)
    with pytest.raises(ValueError, match="even.*95"):
        niqe(np.zeros((200, 200)), model, block_size=95)
    with pytest.raises(ValueError, match="constant"):
        niqe(np.full((192, 192), 128.0), model)
