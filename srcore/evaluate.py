"""Scoring by the standard SR protocol (data/PROVENANCE.md): make LR from HR, upscale, score on Y.

The protocol, step by step: HR is cropped to a multiple of the scale; LR = MATLAB bicubic on uint8; the
SR output is quantised to uint8; PSNR and SSIM are computed on MATLAB's Y channel in float64 after
cropping `scale` pixels from every border; a grey HR is scored on its grey values, not on a Y made from
it. NIQE needs no reference and is computed on the same cropped Y (or grey) image.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from srcore.imageio import grid_samples, list_images, quantize, read_image, to_uint8
from srcore.metrics import crop_border, psnr, rgb_to_y, ssim
from srcore.niqe import NiqeModel, niqe
from srcore.resize import downscale, imresize, modcrop

NIQE_BLOCK = 96  # the official block size, which the pristine model was fitted with
METRICS = ("psnr", "ssim", "niqe", "lpips")
Upscaler = Callable[[torch.Tensor], torch.Tensor]  # LR (3, h, w) in [0, 1] -> SR (3, s*h, s*w) in [0, 1]
Distance = Callable[[torch.Tensor, torch.Tensor], float]  # (SR, HR) (3, H, W) in [0, 1] -> e.g. LPIPS
SaveImage = Callable[[str, torch.Tensor], None]  # (HR file name, SR (3, H, W) on the 8-bit grid)


@dataclass
class ImageScore:
    name: str
    psnr: float | None = None
    ssim: float | None = None
    niqe: float | None = None
    lpips: float | None = None


def bicubic_upscaler(scale: int) -> Upscaler:
    """MATLAB imresize(LR, s) on the uint8 LR, the baseline row of every SR table."""
    return lambda lq: imresize(lq.double(), float(scale), uint8=True)


def model_upscaler(model: nn.Module, device: str = "cpu", self_ensemble: bool = False) -> Upscaler:
    """A generator as an Upscaler, run in fp32 (bf16 outputs carry ~half a grey level of error).

    self_ensemble: average the outputs over the 8 flips/rotations of the input (EDSR's "+" rows).
    """
    model = model.to(device).eval()
    transforms = [(flip, rot) for flip in (False, True) for rot in range(4)] if self_ensemble else [(False, 0)]

    @torch.no_grad()
    def upscale(lq: torch.Tensor) -> torch.Tensor:
        x = lq.float()[None].to(device)  # (1, 3, h, w)
        total = 0
        for flip, rot in transforms:
            t = (x.flip(-1) if flip else x).rot90(rot, (-2, -1))
            y = model(t).float().rot90(-rot, (-2, -1))
            total = total + (y.flip(-1) if flip else y)
        return (total / len(transforms))[0].clamp(0, 1).cpu()

    return upscale


def scoring_plane(image: torch.Tensor, grey: bool, y_channel: bool) -> np.ndarray:
    """The float64 [0, 255] array that gets scored: (H, W) Y or grey values, or (H, W, 3) RGB.

    image: (3, H, W) in [0, 1], already on the 8-bit grid. For a grey source the grey value is the
    channel mean (exact for replicated channels; a model's near-grey RGB output is averaged).
    """
    rgb = image.double().permute(1, 2, 0).numpy() * 255
    if grey:
        return rgb.mean(axis=2)
    return rgb_to_y(rgb) if y_channel else rgb


def score_image(name: str, sr: torch.Tensor, hr: torch.Tensor | None, *, grey: bool, crop: int,
                y_channel: bool = True, niqe_model: NiqeModel | None = None, with_niqe: bool = True,
                lpips: Distance | None = None) -> ImageScore:
    """Score one SR image (3, H, W) in [0, 1] against hr (3, H, W) or None (NIQE only).

    SR is quantised to uint8 first, as the protocol scores saved images. hr is taken on its own 8- or
    16-bit grid in float64 (k/255 = 257k/65535), so an SR equal to its reference scores PSNR inf, not
    the ~160 dB float32 rounding would give. lpips: a distance scored on the cropped RGB images.
    Errors name the image.
    """
    sr = to_uint8(sr).double() / 255
    if 2 * crop >= min(sr.shape[1:]):
        raise ValueError(f"{name}: {sr.shape[2]}x{sr.shape[1]} is too small to crop {crop} pixels from every "
                         f"border (the crop border, by default the scale)")
    sr_plane = crop_border(scoring_plane(sr, grey, y_channel), crop)
    score = ImageScore(name)
    if hr is not None:
        if hr.shape != sr.shape:
            raise ValueError(f"{name}: SR is {tuple(sr.shape)} but its reference is {tuple(hr.shape)}")
        hr = grid_samples(hr, 16) / 65535
        hr_plane = crop_border(scoring_plane(hr, grey, y_channel), crop)
        try:
            score.psnr, score.ssim = psnr(sr_plane, hr_plane), ssim(sr_plane, hr_plane)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from error
        if lpips is not None:
            score.lpips = lpips(crop_border(sr.permute(1, 2, 0), crop).permute(2, 0, 1),
                                crop_border(hr.permute(1, 2, 0), crop).permute(2, 0, 1))
    if with_niqe:
        score.niqe = niqe_score(name, sr, sr_plane, grey, crop, niqe_model)
    return score


def niqe_score(name: str, sr: torch.Tensor, sr_plane: np.ndarray, grey: bool, crop: int,
               niqe_model: NiqeModel | None) -> float | None:
    """NIQE of the cropped luma, or None with a warning when it is smaller than one NIQE block."""
    # NIQE reproduces the official code on integer grey levels: MATLAB's rgb2ycbcr returns uint8 Y.
    luma = sr_plane if sr_plane.ndim == 2 else crop_border(scoring_plane(sr, grey, y_channel=True), crop)
    if min(luma.shape) >= NIQE_BLOCK:
        return niqe(np.floor(luma + 0.5), niqe_model, block_size=NIQE_BLOCK)
    warnings.warn(f"{name}: {luma.shape[1]}x{luma.shape[0]} after cropping is smaller than one "
                  f"{NIQE_BLOCK}x{NIQE_BLOCK} NIQE block: no NIQE for it")
    return None


def hr_folder(data: Path) -> Path:
    """`DIR/HR` when it exists (benchmark layout), else DIR itself."""
    return data / "HR" if (data / "HR").is_dir() else data


def evaluate_dataset(upscale: Upscaler, data: Path, scale: int, *, crop: int | None = None,
                     y_channel: bool = True, with_niqe: bool = True, niqe_model: NiqeModel | None = None,
                     lpips: Distance | None = None, save: SaveImage | None = None, quiet: bool = False
                     ) -> list[ImageScore]:
    """Make LR from every HR image in `data` (or `data/HR`) by the protocol, upscale it, and score it.
    save: called with each HR file name and its SR as scored; quiet: no progress bar."""
    crop = scale if crop is None else crop
    scores = []
    for path in tqdm(list_images(hr_folder(data)), desc=f"eval x{scale}", unit="img", disable=True if quiet else None):
        hr = read_image(path)
        hr_rgb = modcrop(hr.rgb.double(), scale)
        sr = upscale(downscale(hr_rgb, scale)).clamp(0, 1)
        if save is not None:
            save(path.name, quantize(sr.float()))
        scores.append(score_image(path.name, sr, hr_rgb, grey=hr.grey, crop=crop, y_channel=y_channel,
                                  niqe_model=niqe_model, with_niqe=with_niqe, lpips=lpips))
    return scores


def reference_niqe(data: Path, scale: int, *, crop: int | None = None, niqe_model: NiqeModel | None = None
                   ) -> list[ImageScore]:
    """NIQE of the HR images themselves, modcropped and border-cropped as the SR outputs are: the
    perceptual quality a model can aim for (the reference line of a perception-distortion plot)."""
    crop = scale if crop is None else crop
    scores = []
    for path in list_images(hr_folder(data)):
        hr = read_image(path)
        scores.append(score_image(path.name, modcrop(hr.rgb.double(), scale), None, grey=hr.grey, crop=crop,
                                  niqe_model=niqe_model))
    return scores


def score_files(paths: list[Path], reference: Path | None, *, scale: int = 1, crop: int = 0,
                y_channel: bool = True, niqe_model: NiqeModel | None = None) -> list[ImageScore]:
    """Score existing images: NIQE always; PSNR/SSIM against `reference/<same file name>` when given."""
    pairs = [(path, None if reference is None else reference / path.name) for path in paths]
    return score_pairs(pairs, scale=scale, crop=crop, y_channel=y_channel, niqe_model=niqe_model)


def score_pairs(pairs: list[tuple[Path, Path | None]], *, scale: int = 1, crop: int = 0, y_channel: bool = True,
                niqe_model: NiqeModel | None = None, with_niqe: bool = True, lpips: Distance | None = None,
                quiet: bool = False) -> list[ImageScore]:
    """Score each image against its reference (None: no-reference metrics only).

    A reference may be up to scale-1 pixels larger per side than the image (the SR of a modcropped HR);
    it is then cropped top-left. Any other size mismatch is an error naming the file.
    """
    scores = []
    for path, ref_path in tqdm(pairs, desc="metrics", unit="img", disable=True if quiet else None):
        image = read_image(path)
        hr_rgb, grey = None, image.grey
        if ref_path is not None:
            if not ref_path.is_file():
                raise FileNotFoundError(f"no reference for {path}: expected {ref_path}")
            ref = read_image(ref_path)
            hr_rgb, grey = matched_reference(ref.rgb, image.rgb, scale, path), ref.grey
        scores.append(score_image(path.name, image.rgb, hr_rgb, grey=grey, crop=crop, y_channel=y_channel,
                                  niqe_model=niqe_model, with_niqe=with_niqe, lpips=lpips))
    return scores


def matched_reference(hr: torch.Tensor, sr: torch.Tensor, scale: int, path: Path) -> torch.Tensor:
    """Crop hr (3, H, W) top-left to sr's size when it is larger by less than `scale` (modcrop)."""
    h, w = sr.shape[-2:]
    extra_h, extra_w = hr.shape[-2] - h, hr.shape[-1] - w
    if not (0 <= extra_h < scale and 0 <= extra_w < scale):
        raise ValueError(f"{path}: image is {h}x{w} but its reference is {hr.shape[-2]}x{hr.shape[-1]} "
                         f"(a reference may only be up to scale-1 = {scale - 1} pixels larger)")
    return hr[..., :h, :w]


def mean_scores(scores: list[ImageScore]) -> dict[str, float]:
    """Mean of every metric that was computed for all images (PSNR averaged in dB, as the tables do)."""
    means = {}
    for key in METRICS:
        values = [getattr(s, key) for s in scores]
        if values and all(v is not None for v in values):
            means[key] = float(np.mean(values))
    return means


def report(scores: list[ImageScore], **meta) -> dict:
    """The JSON object of the command line: {..meta, "images": [...], "mean": {...}}, None fields dropped."""
    images = [{k: v for k, v in asdict(s).items() if v is not None} for s in scores]
    return {**meta, "images": images, "mean": mean_scores(scores)}
