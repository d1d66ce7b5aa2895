"""Image files to and from float tensors: read PNG, JPEG, BMP, TIFF, WebP; write 8- or 16-bit PNG.

Pixels come back as `rgb: (3, H, W)` float32 in [0, 1] plus an optional `alpha: (1, H, W)`, whatever the
file's mode (grey, palette, CMYK, 1-bit...). The EXIF Orientation tag is applied, as every viewer does (a
phone photo stored sideways comes back upright); the EXIF block (its Orientation then reset to 1) and the
ICC profile are kept as bytes for writers to carry over, and no colour management is done. Pillow decodes
everything except 16-bit PNGs: it silently cuts 16-bit RGB, RGBA and LA PNGs to 8 bits per channel (only
16-bit grey survives, as mode 'I;16'), so all 16-bit PNGs go through pypng. pypng also writes every PNG
here, so a 16-bit write then read is exact on the k/65535 grid.

A file that cannot be decoded in full (corrupt, truncated, empty, not an image, or larger than the pixel
limit, MAX_PIXELS unless the caller raises it) raises ImageReadError naming it; nothing is ever half-read.
"""
from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import png  # pypng
import torch
from PIL import Image as PILImage
from PIL import ImageFile, UnidentifiedImageError

from srcore.atomic import atomic_path

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Decompression-bomb guard, checked from the header before any pixel is decoded. Equal to Pillow's default
# Image.MAX_IMAGE_PIXELS (~9459 x 9459); Pillow's global limit is left as it is, and Pillow itself refuses
# images over twice its limit while opening them (DecompressionBombError, re-raised as ImageReadError).
MAX_PIXELS = 89_478_485

GREY16_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
GREY_MODES = ("1", "L", "LA", "La") + GREY16_MODES
ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
# Modes Pillow converts to L/LA/RGB/RGBA without losing anything the source holds.
EIGHT_BIT_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX",
                   "CMYK", "YCbCr", "LAB", "HSV")
TIFF_BITS_PER_SAMPLE = 258
EXIF_ORIENTATION = 0x0112
# EXIF Orientation -> what turns the stored (H, W, C) samples upright; the same transposes as Pillow's
# ImageOps.exif_transpose (tests/test_imageio.py checks all eight against it).
UPRIGHT = {
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # upside down
    4: lambda a: a[::-1],  # mirrored top-bottom
    5: lambda a: a.transpose(1, 0, 2),  # mirrored along the main diagonal
    6: lambda a: np.rot90(a, -1),  # stored turned 90 degrees anticlockwise: turn it clockwise
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # mirrored along the other diagonal
    8: lambda a: np.rot90(a, 1),  # stored turned 90 degrees clockwise
}


class ImageReadError(ValueError):
    """A file that is not a readable image; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Image:
    """A decoded image.

    rgb: (3, H, W) float32 in [0, 1]; grey sources are replicated to 3 channels.
    alpha: (1, H, W) float32 in [0, 1], or None when the file has no alpha (nor a transparent colour).
    grey: True when the source had one colour channel (L, LA, I;16, 1-bit...).
    bit_depth: 8 or 16, bits per channel of the source (sources below 8 bits count as 8).

    exif: the file's EXIF block (Pillow's b"Exif\\0\\0..." form, Orientation reset to 1), or None.
    icc: the file's ICC colour profile, or None.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor | None
    grey: bool
    bit_depth: int
    exif: bytes | None = None
    icc: bytes | None = None


@dataclass(frozen=True)
class Meta:
    """What a file carries besides its samples: EXIF Orientation (1-8; 1 is upright), EXIF block, ICC profile."""

    orientation: int = 1
    exif: bytes | None = None
    icc: bytes | None = None


def check_bit_depth(bit_depth: int) -> int:
    """Largest value of the integer grid for `bit_depth` (255 or 65535); only 8 and 16 are allowed."""
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth={bit_depth!r} is not supported; use 8 or 16")
    return (1 << bit_depth) - 1


def grid_samples(x: torch.Tensor, bit_depth: int) -> torch.Tensor:
    """x: float, clamped to [0, 1] -> float64 integers round(x * (2**bit_depth - 1)), same shape.

    Computed in float64, where x * 65535 is exact for float32 x; in float32 the product is itself rounded
    and ~0.1% of random inputs land on the wrong side of a .5 tie.
    """
    return (x.double().clamp(0, 1) * check_bit_depth(bit_depth)).round()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """x: float, nominally in [0, 1] (clamped) -> uint8 round(x * 255), same shape and device."""
    return grid_samples(x, 8).to(torch.uint8)


def quantize(x: torch.Tensor, bit_depth: int = 8) -> torch.Tensor:
    """x: float, clamped to [0, 1] -> the nearest k / (2**bit_depth - 1), same shape and dtype."""
    if not x.is_floating_point():
        raise ValueError(f"quantize needs a float tensor, got dtype {x.dtype}")
    return (grid_samples(x, bit_depth) / check_bit_depth(bit_depth)).to(x.dtype)


def list_images(folder: str | Path) -> list[Path]:
    """Image files (suffix in IMAGE_SUFFIXES, any case) directly inside `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no images in {folder}: expected files ending in {', '.join(IMAGE_SUFFIXES)}")
    return files


def read_image(path: str | Path, max_pixels: int | None = None) -> Image:
    """Decode the file at `path` in full, upright; see Image for the layout. Only the first frame of
    multi-frame files. max_pixels: the decompression-bomb guard, checked from the header before any pixel
    is decoded (None: MAX_PIXELS; 0: no limit, for genuinely large images).

    Raises FileNotFoundError when there is no file, ImageReadError when it is not a whole, readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Set by some other code; it would make Pillow pad truncated files with grey instead of failing.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; srcore.imageio refuses to read "
                           "truncated images silently. Leave it False.")
    try:
        pixels, grey, bit_depth, meta = decode(path, max_pixels)
    except (ImageReadError, FileNotFoundError, PermissionError):
        raise  # already names the file, or is about access rather than the file's content
    except (UnidentifiedImageError, PILImage.DecompressionBombError, OSError, SyntaxError, ValueError,
            EOFError, png.FormatError, zlib.error) as error:
        raise ImageReadError(f"{path}: not a readable image ({type(error).__name__}: {error})") from error
    upright = UPRIGHT.get(meta.orientation, lambda a: a)(pixels)
    return to_image(np.ascontiguousarray(upright), grey, bit_depth, meta)


def decode(path: Path, max_pixels: int | None) -> tuple[np.ndarray, bool, int, Meta]:
    """Pixels (H, W, C) uint8 or uint16 as stored, C in 1..4 (L, LA, RGB, RGBA), grey flag, bit depth, meta."""
    name, limit = ("MAX_PIXELS", MAX_PIXELS) if max_pixels is None else ("max_pixels", max_pixels)
    if limit < 0:
        raise ValueError(f"read_image: max_pixels must be >= 0 (0: no limit), got {limit}")
    with pillow_limit(limit), PILImage.open(path) as img:  # reads the header only
        width, height = img.size
        if limit and width * height > limit:
            raise ImageReadError(f"{path}: {width}x{height} = {width * height} pixels is more than {name} = "
                                 f"{limit} (decompression-bomb guard; raise it for a genuinely large image)")
        if img.format == "PNG" and png_bit_depth(path) == 16:
            return (*read_png16(path), file_meta(img))
        img.load()  # full decode here, so truncated or corrupt data fails inside read_image's try
        return (*pillow_pixels(path, img), file_meta(img))


@contextlib.contextmanager
def pillow_limit(limit: int) -> Iterator[None]:
    """Lift Pillow's own bomb guard (a warning over Image.MAX_IMAGE_PIXELS, a refusal over twice that) to
    `limit` pixels (0: none) for the duration; decode applies `limit` itself. Pillow's limit is a global,
    so this is not thread-safe; it is restored on exit."""
    saved = PILImage.MAX_IMAGE_PIXELS
    if saved is not None and (limit == 0 or limit > saved):
        PILImage.MAX_IMAGE_PIXELS = limit or None
    try:
        yield
    finally:
        PILImage.MAX_IMAGE_PIXELS = saved


def file_meta(img: PILImage.Image) -> Meta:
    """The Orientation tag, the EXIF block with Orientation reset to 1 (the pixels are turned upright), the ICC."""
    exif = img.getexif()
    orientation = exif.get(EXIF_ORIENTATION, 1)
    if orientation != 1:
        exif[EXIF_ORIENTATION] = 1
    return Meta(orientation=orientation if orientation in UPRIGHT else 1,
                exif=exif.tobytes() if len(exif) else None, icc=img.info.get("icc_profile") or None)


def png_bit_depth(path: Path) -> int:
    """Bits per sample declared in the PNG header (1, 2, 4, 8 or 16)."""
    with open(path, "rb") as file:
        reader = png.Reader(file=file)
        reader.preamble()  # chunks up to the first IDAT, CRCs checked
        return reader.bitdepth


def read_png16(path: Path) -> tuple[np.ndarray, bool, int]:
    """A 16-bit PNG at full depth: (H, W, C) uint16; a tRNS colour key becomes an alpha channel."""
    with open(path, "rb") as file:
        width, height, rows, info = png.Reader(file=file).read()  # raw samples: no sBIT shift, unlike asDirect
        flat = np.array(list(rows), dtype=np.uint16)  # (H, W * planes)
    planes = info["planes"]
    if flat.shape != (height, width * planes):
        raise ImageReadError(f"{path}: decoded {flat.shape} samples, header says {height}x{width}x{planes}")
    pixels = flat.reshape(height, width, planes)
    if "transparent" in info:  # colour key (grey or RGB without alpha): that exact value is see-through
        key = np.array(info["transparent"], dtype=np.uint16)
        opaque = np.where((pixels == key).all(axis=-1), 0, 65535).astype(np.uint16)
        pixels = np.concatenate([pixels, opaque[..., None]], axis=-1)
    return pixels, info["greyscale"], 16


def pillow_pixels(path: Path, img: PILImage.Image) -> tuple[np.ndarray, bool, int]:
    """A loaded Pillow image as (H, W, C) L, LA, RGB or RGBA uint8, or 16-bit grey; grey flag; bit depth."""
    if img.mode in GREY16_MODES:
        values = np.asarray(img)
        if values.min() < 0 or values.max() > 65535:
            raise ImageReadError(f"{path}: mode {img.mode} values span [{values.min()}, {values.max()}]; "
                                 f"only 0..65535 (16-bit) grey is supported")
        return values.astype(np.uint16)[..., None], True, 16
    if img.mode not in EIGHT_BIT_MODES:
        raise ImageReadError(f"{path}: pixel mode {img.mode!r} is not supported; readable modes are "
                             f"{', '.join(EIGHT_BIT_MODES + GREY16_MODES)}")
    check_no_reduced_tiff(path, img)
    grey = img.mode in GREY_MODES
    alpha = img.mode in ALPHA_MODES or "transparency" in img.info  # palette or colour-key transparency
    target = ("LA" if alpha else "L") if grey else ("RGBA" if alpha else "RGB")
    pixels = np.asarray(img.convert(target))  # convert() undoes Adobe's inverted CMYK in JPEG
    return pixels.reshape(img.height, img.width, len(target)), grey, 8


def check_no_reduced_tiff(path: Path, img: PILImage.Image) -> None:
    """Refuse colour TIFFs above 8 bits: Pillow decodes them as 8-bit RGB, dropping the low bits unasked."""
    if img.format != "TIFF":
        return
    bits = img.tag_v2.get(TIFF_BITS_PER_SAMPLE, 8)
    depth = max(bits) if isinstance(bits, tuple) else bits
    if depth > 8:
        raise ImageReadError(f"{path}: {depth}-bit colour TIFF would be cut to 8 bits by Pillow; "
                             f"save it as a 16-bit PNG to keep full precision")


def to_image(pixels: np.ndarray, grey: bool, bit_depth: int, meta: Meta = Meta()) -> Image:
    """(H, W, C) uint8/uint16 samples, C in 1..4 (L, LA, RGB, RGBA) -> Image with float32 planes in [0, 1]."""
    planes = torch.from_numpy(pixels.astype(np.float32) / np.float32(check_bit_depth(bit_depth)))
    planes = planes.permute(2, 0, 1).contiguous()  # (C, H, W)
    colour_channels = 1 if planes.shape[0] <= 2 else 3
    rgb = planes[:colour_channels].expand(3, -1, -1).contiguous()
    alpha = planes[colour_channels:] if planes.shape[0] in (2, 4) else None
    return Image(rgb=rgb, alpha=alpha, grey=grey, bit_depth=bit_depth, exif=meta.exif, icc=meta.icc)


def write_png(path: str | Path, image: torch.Tensor, alpha: torch.Tensor | None = None, bit_depth: int = 8
              ) -> None:
    """Save `image` as an 8- or 16-bit PNG: RGB/RGBA for 3 channels, L/LA for 1.

    image: (3, H, W) or (1, H, W) float, values clamped to [0, 1]; alpha: (1, H, W) float or None.
    Samples are round(x * (2**bit_depth - 1)); the file is written by write_samples (atomically).
    """
    planes = png_planes(image, alpha)  # (C, H, W)
    samples = grid_samples(planes.detach().cpu(), bit_depth).permute(1, 2, 0).numpy()  # (H, W, C) float64
    write_samples(path, samples.astype(np.uint8 if bit_depth == 8 else np.uint16))


def write_samples(path: str | Path, samples: np.ndarray, chunks: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """Save (H, W, C) uint8 or uint16 samples as an 8- or 16-bit PNG: C = 1 (L), 2 (LA), 3 (RGB), 4 (RGBA).

    chunks: extra (type, data) PNG chunks written right after IHDR, e.g. iCCP and eXIf (srcore.imagewrite).
    Rows are packed one at a time (16-bit ones as big-endian bytes), so nothing the size of the image is
    copied. The file is written atomically (srcore.atomic): readers never see half a file and a failed
    write leaves no partial file.
    """
    if samples.dtype not in (np.uint8, np.uint16) or samples.ndim != 3 or samples.shape[2] not in (1, 2, 3, 4) \
            or 0 in samples.shape:
        raise ValueError(f"write_samples: samples must be uint8 or uint16 (H, W, C) with C in 1..4 and H, W > 0, "
                         f"got {samples.dtype} {samples.shape}")
    path = Path(path)
    height, width, channels = samples.shape
    big_endian = np.dtype(">u2") if samples.dtype == np.uint16 else np.dtype(np.uint8)
    rows = (row.astype(big_endian).view(np.uint8) for row in samples.reshape(height, width * channels))
    writer = ChunkWriter(width, height, greyscale=channels <= 2, alpha=channels in (2, 4),
                         bitdepth=8 * samples.itemsize)
    writer.chunks = chunks
    with atomic_path(path) as temporary, open(temporary, "xb") as file:
        writer.write_packed(file, rows)  # rows already packed: pypng only adds filter bytes and deflates


class ChunkWriter(png.Writer):
    """pypng's Writer, adding `chunks` after its own header chunks (before any image data, where iCCP must be)."""

    chunks: tuple[tuple[bytes, bytes], ...] = ()

    def write_preamble(self, outfile) -> None:
        super().write_preamble(outfile)
        for tag, data in self.chunks:
            png.write_chunk(outfile, tag, data)


def png_planes(image: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """Check write_png's inputs and stack them: (C, H, W) with C = 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA)."""
    if image.dim() != 3 or image.shape[0] not in (1, 3) or image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"write_png: image must be (3, H, W) or (1, H, W) with H, W > 0, "
                         f"got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"write_png: image must be float in [0, 1], got dtype {image.dtype}")
    if alpha is None:
        return image
    if tuple(alpha.shape) != (1, *image.shape[1:]) or not alpha.is_floating_point():
        raise ValueError(f"write_png: alpha must be float (1, {image.shape[1]}, {image.shape[2]}) to match "
                         f"the image, got {alpha.dtype} {tuple(alpha.shape)}")
    return torch.cat([image, alpha.to(image.device, image.dtype)])
