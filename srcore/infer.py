"""Upscale whole images of any size with a generator, tile by tile, without seams.

A tile is a block of at most `tile` x `tile` LR pixels (its core) plus `overlap` pixels of context on each
side, clipped at the image borders. The model sees the padded tile; only the core's part of its output is
kept. An output pixel depends on the LR pixels within the network's receptive radius (in LR pixels), so
when `overlap` is at least that radius every kept pixel saw exactly what it would have seen in the whole
image, and the stitched result equals whole-image inference up to float rounding. The border clipping
matches too: a tile at an image border meets the same zero padding the whole image does.

Receptive radii, in LR pixels: EDSR with B blocks at x2 has 2B + 4 (conv_first, two convs per block,
conv_body, the upsampler's conv, and conv_last's one HR pixel rounded up to one LR pixel), so
EDSR-baseline (B=16) needs 36 (a couple more at x4); RRDBNet adds 15 per RRDB. The default overlap of 40
covers the EDSR and SRResNet presets; a 23-block RRDBNet needs far more, and with less overlap pixels near
tile edges can differ slightly from whole-image inference. Pass overlap >= the radius when it must match.
"""
from __future__ import annotations

import itertools

import torch
from torch import nn
from tqdm import tqdm

from srcore.evaluate import model_upscaler
from srcore.imageio import Image
from srcore.resize import imresize

Span = tuple[int, int, int, int]  # core start, core end, padded start, padded end (end exclusive)


def tile_spans(length: int, tile: int, overlap: int) -> list[Span]:
    """The tiles along one dimension of `length` pixels: cores of `tile` (0: the whole length), padded by
    `overlap` on each side and clipped to [0, length)."""
    tile = tile or length
    return [(start, min(start + tile, length), max(start - overlap, 0), min(start + tile + overlap, length))
            for start in range(0, length, tile)]


def check_tiling(lr: torch.Tensor, scale: int, tile: int, overlap: int) -> None:
    if lr.dim() != 3 or lr.shape[0] != 3 or lr.shape[1] == 0 or lr.shape[2] == 0:
        raise ValueError(f"upscale_tiled: lr must be RGB (3, H, W) with H, W > 0, got shape {tuple(lr.shape)}")
    if not lr.is_floating_point():
        raise ValueError(f"upscale_tiled: lr must be float in [0, 1], got dtype {lr.dtype}")
    if scale < 1:
        raise ValueError(f"upscale_tiled: scale must be a positive integer, got {scale}")
    if tile < 0:
        raise ValueError(f"upscale_tiled: tile must be >= 0 LR pixels (0: whole image at once), got {tile}")
    if overlap < 0:
        raise ValueError(f"upscale_tiled: overlap must be >= 0 LR pixels, got {overlap}")


@torch.no_grad()
def upscale_tiled(model: nn.Module, lr: torch.Tensor, scale: int, tile: int = 128, overlap: int = 40,
                  device: str = "cpu") -> torch.Tensor:
    """lr: (3, H, W) in [0, 1] -> SR (3, scale*H, scale*W) float32 in [0, 1], on the CPU.

    The model runs in eval mode and fp32 on `device`, one padded tile at a time, so the device only ever
    holds one tile and its activations; the output is assembled on the CPU. tile=0 runs the whole image
    at once. `scale` must be the model's: a model whose output is not scale x its input is a ValueError.
    """
    check_tiling(lr, scale, tile, overlap)
    upscale = model_upscaler(model, device=device)  # fp32, no_grad, clamped to [0, 1], back on the CPU
    _, height, width = lr.shape
    out = torch.empty(3, scale * height, scale * width)  # (3, sH, sW)
    tiles = list(itertools.product(tile_spans(height, tile, overlap), tile_spans(width, tile, overlap)))
    for (y0, y1, py0, py1), (x0, x1, px0, px1) in tqdm(tiles, desc="upscale", unit="tile", disable=None):
        sr = upscale(lr[:, py0:py1, px0:px1])  # (3, s*(py1-py0), s*(px1-px0))
        if tuple(sr.shape) != (3, scale * (py1 - py0), scale * (px1 - px0)):
            raise ValueError(f"upscale_tiled: the model turned a {py1 - py0}x{px1 - px0} tile into "
                             f"{tuple(sr.shape)}, not x{scale}; is it a x{scale} RGB model?")
        core = sr[:, scale * (y0 - py0):scale * (y1 - py0), scale * (x0 - px0):scale * (x1 - px0)]
        out[:, scale * y0:scale * y1, scale * x0:scale * x1] = core
    return out


def upscale_image(model: nn.Module, image: Image, scale: int, tile: int = 128, overlap: int = 40,
                  device: str = "cpu") -> Image:
    """A decoded image upscaled x`scale`, in the same layout (see srcore.imageio.Image).

    rgb: through the model with upscale_tiled -> (3, sH, sW) in [0, 1]. A grey source stays grey: the
    model still sees three (equal) channels, and its output is averaged back to one grey plane,
    replicated to 3 channels as read_image does, so write `rgb[:1]` to get a grey file again.
    alpha: MATLAB bicubic (srcore.resize.imresize, no antialiasing needed upwards), clamped to [0, 1];
    it is a mask, not content the model was trained on. grey and bit_depth are the source's.
    """
    rgb = upscale_tiled(model, image.rgb, scale, tile=tile, overlap=overlap, device=device)  # (3, sH, sW)
    if image.grey:
        rgb = rgb.mean(0, keepdim=True).expand(3, -1, -1).contiguous()
    alpha = None if image.alpha is None else imresize(image.alpha.float(), scale=float(scale)).clamp(0, 1)
    return Image(rgb=rgb, alpha=alpha, grey=image.grey, bit_depth=image.bit_depth)
