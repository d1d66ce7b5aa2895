"""Write upscaled samples as PNG, JPEG or WebP, carrying the source's EXIF block and ICC profile.

PNG: 8 or 16 bits through srcore.imageio.write_samples, the ICC profile as an iCCP chunk and the EXIF block
as an eXIf chunk (PNG 1.5; read by Pillow, exiftool and browsers). JPEG and WebP: 8 bits through Pillow
at `quality` (1-100), the EXIF block and ICC profile in the places those formats keep them. The EXIF
pixel-size tags, when present, are set to the output's size. Every file is written atomically with the
permissions an ordinary write gives (srcore.atomic).
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from srcore.atomic import atomic_path
from srcore.imageio import write_samples

FORMATS = ("png", "jpg", "webp")
SUFFIXES = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}  # file name -> format
PILLOW_FORMATS = {"jpg": "JPEG", "webp": "WEBP"}
MAX_SIDE = {"jpg": 65535, "webp": 16383}  # what the formats can store
EXIF_IFD = 0x8769
PIXEL_X, PIXEL_Y = 0xA002, 0xA003  # PixelXDimension, PixelYDimension in the Exif IFD
EXIF_HEADER = b"Exif\x00\x00"  # Pillow's form of an EXIF block; PNG's eXIf chunk holds the TIFF data after it


def write_image(path: str | Path, samples: np.ndarray, fmt: str, *, quality: int = 95, exif: bytes | None = None,
                icc: bytes | None = None) -> None:
    """Save (H, W, C) samples, C = 1 (L), 2 (LA), 3 (RGB), 4 (RGBA), as `fmt` (one of FORMATS).

    png: uint8 or uint16. jpg: uint8 L or RGB (JPEG holds no alpha). webp: uint8, grey stored as RGB.
    exif: an EXIF block as srcore.imageio.Image.exif holds it; icc: an ICC profile. A sample layout the
    format cannot hold is a ValueError saying which format can.
    """
    if fmt not in FORMATS:
        raise ValueError(f"write_image: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    height, width = samples.shape[:2]
    exif = fitted_exif(exif, width, height) if exif else None
    if fmt == "png":
        write_samples(path, samples, png_chunks(exif, icc))
        return
    check_pillow_samples(samples, fmt)
    image = PILImage.fromarray(samples if samples.shape[2] > 1 else samples[..., 0])  # L, LA, RGB or RGBA
    if fmt == "webp" and image.mode in ("L", "LA"):
        image = image.convert("RGBA" if image.mode == "LA" else "RGB")
    options = {"quality": quality, **({"exif": exif} if exif else {}), **({"icc_profile": icc} if icc else {})}
    with atomic_path(path) as temporary:
        image.save(temporary, format=PILLOW_FORMATS[fmt], **options)  # explicit format: the name ends in .tmp


def check_pillow_samples(samples: np.ndarray, fmt: str) -> None:
    """What JPEG or WebP cannot hold: 16 bits, JPEG's alpha, sides over the format's maximum."""
    name = {"jpg": "JPEG", "webp": "WebP"}[fmt]
    if samples.dtype != np.uint8:
        raise ValueError(f"{name} holds 8 bits per channel, these samples are {samples.dtype} "
                         f"(16-bit output needs png; or ask for 8 bits)")
    if fmt == "jpg" and samples.shape[2] in (2, 4):
        raise ValueError(f"{name} holds no alpha channel and this image has one; write png or webp to keep it")
    height, width = samples.shape[:2]
    if max(height, width) > MAX_SIDE[fmt]:
        raise ValueError(f"{name} holds images up to {MAX_SIDE[fmt]} pixels a side, this one is {width}x{height}; "
                         f"write png")


def fitted_exif(exif: bytes, width: int, height: int) -> bytes:
    """The EXIF block with its pixel-size tags (when it has them) set to width x height."""
    tags = PILImage.Exif()
    tags.load(exif)
    sub = tags.get_ifd(EXIF_IFD)
    for tag, value in ((PIXEL_X, width), (PIXEL_Y, height)):
        if tag in sub:
            sub[tag] = value
    return tags.tobytes()


def png_chunks(exif: bytes | None, icc: bytes | None) -> tuple[tuple[bytes, bytes], ...]:
    """iCCP (name, compression method 0, zlib data) and eXIf (bare TIFF data) chunks for what is given."""
    chunks = []
    if icc:
        chunks.append((b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    if exif:
        chunks.append((b"eXIf", exif[len(EXIF_HEADER):] if exif.startswith(EXIF_HEADER) else exif))
    return tuple(chunks)
