"""Upscale whole images of any size with a generator, tile by tile, without seams and in bounded memory.

A tile is a block of at most `tile` x `tile` LR pixels (its core) plus `pad` pixels of context on each side,
clipped at the image borders. The model sees the padded tile; only the core's part of its output is kept.
An output pixel depends on the LR pixels within the network's receptive radius (in LR pixels), so when
`pad` is at least that radius every kept pixel saw exactly what it would have seen in the whole image, and
the stitched result equals whole-image inference up to float rounding. The border clipping matches too: a
tile at an image border meets the same zero padding the whole image does.

Receptive radii, in LR pixels: EDSR with B blocks at x2 has 2B + 4 (conv_first, two convs per block,
conv_body, the upsampler's conv, and conv_last's one HR pixel rounded up to one LR pixel), so
EDSR-baseline (B=16) needs 36 (a couple more at x4); RRDBNet adds 15 per RRDB. The default pad of 40
covers the EDSR and SRResNet presets; a 23-block RRDBNet needs far more, and with less pad pixels near tile
edges can differ slightly from whole-image inference. Pass pad >= the radius when it must match.

Memory: upscale_image quantises each tile's core as it is placed, so a 4000x3000 x4 RGB image is held as
a 576 MB uint8 (sH, sW, 3) array rather than 2.3 GB of float32, and the model only ever sees one tile.
rescale_samples (an output scale other than the model's, as Real-ESRGAN's --outscale) resizes that array
one channel at a time with Pillow's Lanczos filter, adding one channel's worth of memory at a time.
"""
from __future__ import annotations

import itertools
from typing import Callable

import numpy as np
import torch
from PIL import Image as PILImage
from torch import nn
from tqdm import tqdm

from srcore.imageio import Image, grid_samples
from srcore.resize import imresize

Span = tuple[int, int, int, int]  # core start, core end, padded start, padded end (end exclusive)
TileFn = Callable[[torch.Tensor], torch.Tensor]  # (C, h, w) -> (C', s*h, s*w)
Place = Callable[[slice, slice, torch.Tensor], None]  # output rows, output cols, (C', rows, cols) core
PRECISIONS = ("fp32", "bf16")
ALPHA_PAD = 2  # LR pixels either side that MATLAB bicubic upscaling reads for one output pixel


class Bicubic(nn.Module):
    """MATLAB bicubic upscaling (srcore.resize.imresize) as a model, the baseline every SR table starts from.

    x: (B, 3, H, W) in [0, 1] -> (B, 3, sH, sW), unclamped. Tiled like any model: it reads 2 LR pixels of
    context either side, so any tile pad >= 2 gives the whole-image result.
    """
    name = "bicubic"

    def __init__(self, scale: int):
        super().__init__()
        if scale < 1:
            raise ValueError(f"bicubic: scale must be a positive integer, got {scale}")
        self.scale = scale
        self.arch_args = dict(in_ch=3, out_ch=3, scale=scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return imresize(x.float(), scale=float(self.scale))


def tile_spans(length: int, tile: int, pad: int) -> list[Span]:
    """The tiles along one dimension of `length` pixels: cores of `tile` (0: the whole length), padded by
    `pad` on each side and clipped to [0, length)."""
    tile = tile or length
    return [(start, min(start + tile, length), max(start - pad, 0), min(start + tile + pad, length))
            for start in range(0, length, tile)]


def check_tiling(lq: torch.Tensor, scale: int, tile: int, pad: int, precision: str) -> None:
    if lq.dim() != 3 or lq.shape[0] != 3 or lq.shape[1] == 0 or lq.shape[2] == 0:
        raise ValueError(f"upscale: lq must be RGB (3, H, W) with H, W > 0, got shape {tuple(lq.shape)}")
    if not lq.is_floating_point():
        raise ValueError(f"upscale: lq must be float in [0, 1], got dtype {lq.dtype}")
    if scale < 1:
        raise ValueError(f"upscale: scale must be a positive integer, got {scale}")
    if tile < 0:
        raise ValueError(f"upscale: tile must be >= 0 LR pixels (0: whole image at once), got {tile}")
    if pad < 0:
        raise ValueError(f"upscale: tile pad must be >= 0 LR pixels, got {pad}")
    if precision not in PRECISIONS:
        raise ValueError(f"upscale: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def model_tile_fn(model: nn.Module, device: str, precision: str, channels_last: bool = True, clamp: bool = True
                  ) -> TileFn:
    """The generator as a TileFn: (3, h, w) in [0, 1] -> (3, s*h, s*w) float32 clamped to [0, 1] (unless
    clamp=False), on the CPU.

    Eval mode, no grad, channels_last unless told otherwise (EDSR tiles ran 1.5-1.8x faster in it on this
    CPU; NCHW is there for the benchmark's baseline); the model itself is moved and set to eval, as
    Module.to does. precision "bf16" runs the model under bf16 autocast
    (faster on CPUs with bf16 units; with models/psnr.pt on Set14 coastguard, 11% of the 8-bit output
    pixels changed by 1/255, none by more), "fp32" in fp32.
    """
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format).eval()
    device_type = torch.device(device).type

    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:
        x = x.float()[None].to(device, memory_format=memory_format)  # (1, 3, h, w)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            y = model(x)
        y = y[0].float()
        return (y.clamp(0, 1) if clamp else y).contiguous().cpu()

    return run


def run_tiles(fn: TileFn, x: torch.Tensor, scale: int, tile: int, pad: int, place: Place, desc: str,
              quiet: bool = False) -> None:
    """Call fn on every padded tile of x: (C, H, W) and hand the core of its output to `place`, with the
    output rows and columns it covers. A tile output that is not `scale` x its input is a ValueError.
    A progress bar counts the tiles on a terminal (stderr), unless quiet or there is one tile."""
    _, height, width = x.shape
    tiles = list(itertools.product(tile_spans(height, tile, pad), tile_spans(width, tile, pad)))
    for (y0, y1, py0, py1), (x0, x1, px0, px1) in tqdm(tiles, desc=desc, unit="tile", leave=False,
                                                       disable=True if quiet or len(tiles) == 1 else None):
        out = fn(x[:, py0:py1, px0:px1])  # (C', s*(py1-py0), s*(px1-px0))
        if tuple(out.shape[1:]) != (scale * (py1 - py0), scale * (px1 - px0)):
            raise ValueError(f"upscale: the model turned a {py1 - py0}x{px1 - px0} tile into "
                             f"{tuple(out.shape)}, not x{scale}; is it a x{scale} RGB model?")
        core = out[:, scale * (y0 - py0):scale * (y1 - py0), scale * (x0 - px0):scale * (x1 - px0)]
        place(slice(scale * y0, scale * y1), slice(scale * x0, scale * x1), core)


def upscale_tiled(model: nn.Module, lq: torch.Tensor, scale: int, tile: int = 256, pad: int = 40,
                  device: str = "cpu", precision: str = "fp32", channels_last: bool = True, quiet: bool = False,
                  clamp: bool = True) -> torch.Tensor:
    """lq: (3, H, W) in [0, 1] -> SR (3, scale*H, scale*W) float32 in [0, 1] (clamp=False: as the model
    gives it), on the CPU.

    For images whose float output fits in memory; upscale_image is the bounded-memory path. tile=0 runs
    the whole image at once. `scale` must be the model's. quiet: no per-tile progress bar.
    """
    check_tiling(lq, scale, tile, pad, precision)
    out = torch.empty(3, scale * lq.shape[1], scale * lq.shape[2])  # (3, sH, sW)

    def place(rows: slice, cols: slice, core: torch.Tensor) -> None:
        out[:, rows, cols] = core

    run_tiles(model_tile_fn(model, device, precision, channels_last, clamp), lq, scale, tile, pad, place, "upscale",
              quiet)
    return out


def tiled_upscaler(model: nn.Module, *, tile: int = 0, pad: int = 40, device: str = "cpu", precision: str = "fp32",
                   self_ensemble: bool = False, quiet: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model as an srcore.evaluate.Upscaler, LR (3, h, w) -> SR (3, sh, sw) in [0, 1], run tile by tile
    (upscale_tiled) on `device` in `precision`. self_ensemble: the mean over the 8 flips/rotations of the
    input (EDSR's "+" rows), clamped once averaged, as srcore.evaluate.model_upscaler does."""
    transforms = [(flip, rot) for flip in (False, True) for rot in range(4)] if self_ensemble else [(False, 0)]
    scale = model.arch_args["scale"]

    def upscale(lq: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(3, scale * lq.shape[1], scale * lq.shape[2])
        for flip, rot in transforms:
            x = (lq.flip(-1) if flip else lq).rot90(rot, (-2, -1))
            y = upscale_tiled(model, x.float(), scale, tile, pad, device, precision, quiet=quiet, clamp=False)
            y = y.rot90(-rot, (-2, -1))
            total += y.flip(-1) if flip else y
        return (total / len(transforms)).clamp(0, 1)

    return upscale


def upscale_image(model: nn.Module, image: Image, scale: int, tile: int = 256, pad: int = 40,
                  device: str = "cpu", precision: str = "fp32", bit_depth: int | None = None, quiet: bool = False
                  ) -> np.ndarray:
    """A decoded image upscaled x`scale`, as PNG samples (sH, sW, C) uint8 (bit_depth 8) or uint16 (16).

    C is 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA): the source's layout (see srcore.imageio.Image), ready for
    srcore.imageio.write_samples. bit_depth: None keeps the source's (16-bit in -> 16-bit out).
    rgb: through the model tile by tile; a grey source stays grey (the model sees three equal channels,
    its output is averaged back to one). alpha: MATLAB bicubic (srcore.resize.imresize), clamped to
    [0, 1], also tile by tile (with ALPHA_PAD of context, so it equals the whole-image resize); it is a
    mask, not content the model was trained on. Each tile is quantised to round(x * (2**bits - 1)) as it
    is placed, so the float output is never held whole. quiet: no per-tile progress bar.
    """
    check_tiling(image.rgb, scale, tile, pad, precision)
    bit_depth = image.bit_depth if bit_depth is None else bit_depth
    dtype = {8: np.uint8, 16: np.uint16}.get(bit_depth)
    if dtype is None:
        raise ValueError(f"upscale: bit_depth must be 8 or 16, got {bit_depth!r}")
    colour = 1 if image.grey else 3
    channels = colour + (image.alpha is not None)
    out = np.empty((scale * image.rgb.shape[1], scale * image.rgb.shape[2], channels), dtype=dtype)

    def placer(first: int) -> Place:
        def place(rows: slice, cols: slice, core: torch.Tensor) -> None:
            core = core.mean(0, keepdim=True) if first == 0 and image.grey else core  # (c, rows, cols)
            out[rows, cols, first:first + core.shape[0]] = grid_samples(core, bit_depth).permute(1, 2, 0).numpy()
        return place

    run_tiles(model_tile_fn(model, device, precision), image.rgb, scale, tile, pad, placer(0), "upscale", quiet)
    if image.alpha is not None:
        resize = lambda a: imresize(a.float(), scale=float(scale)).clamp(0, 1)  # noqa: E731
        run_tiles(resize, image.alpha, scale, tile, ALPHA_PAD, placer(colour), "alpha", quiet)
    return out


def rescale_samples(samples: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, C) uint8/uint16 samples resized to (height, width, C), same dtype, one channel at a time with
    Pillow's Lanczos filter (antialiased when shrinking); 16-bit channels are filtered in float32."""
    if width < 1 or height < 1:
        raise ValueError(f"rescale_samples: target size must be at least 1x1, got {width}x{height}")
    out = np.empty((height, width, samples.shape[2]), dtype=samples.dtype)
    for c in range(samples.shape[2]):
        channel = np.ascontiguousarray(samples[..., c])
        if samples.dtype == np.uint8:
            out[..., c] = np.asarray(PILImage.fromarray(channel).resize((width, height), PILImage.Resampling.LANCZOS))
        else:
            plane = PILImage.fromarray(channel.astype(np.float32))  # mode F
            resized = np.asarray(plane.resize((width, height), PILImage.Resampling.LANCZOS))
            out[..., c] = np.clip(np.rint(resized), 0, 65535).astype(np.uint16)
    return out
