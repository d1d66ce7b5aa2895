"""The SR protocol end to end: bicubic baselines reproduce the published tables."""
from pathlib import Path

import numpy as np
import pytest
import torch

from srcore.evaluate import bicubic_upscaler, evaluate_dataset, mean_scores, score_image, scoring_plane

BENCHMARK = Path(__file__).parents[1] / "data" / "benchmark"

# EDSR paper (Lim et al. 2017), Table 5, Bicubic row: (PSNR, SSIM), Y channel, crop = scale.
PUBLISHED_BICUBIC = {
    ("Set5", 2): (33.66, 0.9299), ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688), ("Set14", 4): (26.00, 0.7027),
    ("B100", 2): (29.56, 0.8431), ("B100", 4): (25.96, 0.6675),
}


@pytest.mark.parametrize("dataset, scale", sorted(PUBLISHED_BICUBIC))
def test_bicubic_reproduces_published_table(dataset: str, scale: int):
    scores = evaluate_dataset(bicubic_upscaler(scale), BENCHMARK / dataset, scale, with_niqe=False)
    means = mean_scores(scores)
    psnr, ssim = PUBLISHED_BICUBIC[dataset, scale]
    assert abs(means["psnr"] - psnr) <= 0.02
    assert abs(means["ssim"] - ssim) <= 0.001


def test_bicubic_output_is_uint8_matlab_upscale():
    lr = torch.randint(0, 256, (3, 5, 7)).double() / 255
    sr = bicubic_upscaler(3)(lr)
    assert sr.shape == (3, 15, 21)
    assert torch.equal(sr * 255, (sr * 255).round()) and sr.min() >= 0 and sr.max() <= 1


def test_grey_images_are_scored_on_grey_values_not_y():
    grey = torch.rand(1, 16, 16).expand(3, 16, 16)
    plane = scoring_plane(grey, grey=True, y_channel=True)
    assert np.allclose(plane, grey[0].double().numpy() * 255)
    y_plane = scoring_plane(grey, grey=False, y_channel=True)
    assert not np.allclose(plane, y_plane)  # Y = 16 + 219/255 * v is a different scale


def test_score_image_quantises_sr_and_crops():
    torch.manual_seed(0)
    hr = torch.randint(0, 256, (3, 20, 20)).double() / 255
    near = hr + 0.3 / 255  # rounds back onto hr
    score = score_image("x", near, hr, grey=False, crop=2, with_niqe=False)
    assert score.psnr == float("inf") and score.ssim == pytest.approx(1.0)
    bad_border = hr.clone()
    bad_border[:, 0, :] = 1 - bad_border[:, 0, :]
    assert score_image("x", bad_border, hr, grey=False, crop=1, with_niqe=False).psnr == float("inf")
    with pytest.raises(ValueError, match="reference"):
        score_image("x", hr, hr[:, :10], grey=False, crop=0, with_niqe=False)
