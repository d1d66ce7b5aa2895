"""The HDF5 image file (schema 3): whole HR images or tiles of them with their LR, and a stored content digest.

Layout, N items, each an image or one tile of an image (srcore.patches writes them):

    hr/<i>          uint8 (3, H, W)           the image as read (16-bit rounded to 8 bits, grey -> RGB)
    lq/x<s>/<i>     uint8 (3, H//s, W//s)     its low-resolution input at scale s (the protocol's LR)
    sizes           int64 (N, 2)              (H, W) of every hr item: readers plan crops without opening N datasets

Item datasets are chunked in CHUNK x CHUNK pixels (all channels per chunk): a random crop reads only the chunks
it overlaps (srcore.data). LR lives in one group per scale, so LR of other scales for the same HR can be added
beside it. Attributes: schema_version, scale, tile, stride, seed, items, sources (images used), skipped, the
params that made the file, and `digest`: the sha256 of every item's shapes and bytes in order
(`add_to_digest`), computed while writing, so a run's identity names its data without hashing it again.
A file with LR at more scales (prepare.more_scales, for multi-scale models) also has `scales` and, per
further scale s, `digest_x<s>` over the (hr, lq/x<s>) items.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np

SCHEMA_VERSION = 3  # 3: whole images or tiles with their LR, per item; 2: fixed-size patches in two datasets
# Fixed format bounds: files do not change with the HDF5 version, and v1.10 objects allow attributes
# over 64 KiB (long source lists). Objects carry no timestamps (track_times=False).
LIBVER = ("v110", "v110")
# Chunk side in pixels. A 96-px crop reads 4-9 HR chunks of 12 KB; see docs/data.md for 32/64/128.
CHUNK = 64

Item = tuple[np.ndarray, np.ndarray]  # (hr (3, H, W), lq (3, H//s, W//s)) uint8


def hr_key(index: int) -> str:
    return f"hr/{index:06d}"


def lq_key(index: int, scale: int) -> str:
    return f"lq/x{scale}/{index:06d}"


def add_to_digest(digest: "hashlib._Hash", hr: np.ndarray, lq: np.ndarray) -> None:
    """Feed one item (its shapes and bytes) to `digest`: the file's `digest` attribute is this over its items."""
    for array in (hr, lq):
        digest.update(str(tuple(int(d) for d in array.shape)).encode())
        digest.update(np.ascontiguousarray(array).tobytes())


def content_digest(items: Iterable[Item]) -> str:
    """sha256 of (hr, lq) uint8 items in order, as write_images stores it."""
    digest = hashlib.sha256()
    for hr, lq in items:
        add_to_digest(digest, np.asarray(hr), np.asarray(lq))
    return digest.hexdigest()


def write_item(f: h5py.File, index: int, hr: np.ndarray, lq: np.ndarray, scale: int, chunk: int = CHUNK,
               with_hr: bool = True) -> None:
    """Item `index`: its hr (unless with_hr is False: LR of another scale for an item already written) and lq."""
    for key, array in ((hr_key(index), hr), (lq_key(index, scale), lq))[0 if with_hr else 1:]:
        chunks = (array.shape[0], min(chunk, array.shape[1]), min(chunk, array.shape[2]))
        f.create_dataset(key, data=array, chunks=chunks, track_times=False)


@dataclass(frozen=True)
class ImageFile:
    """What a reader needs of a checked image file: HR sizes (N, 2) of its items, its scale and digest."""
    path: Path
    scale: int
    sizes: np.ndarray
    digest: str

    def nbytes(self) -> int:
        """Bytes of all HR and LR pixels: what holding the file's items in memory takes."""
        h, w = self.sizes[:, 0], self.sizes[:, 1]
        return int(3 * (h * w + (h // self.scale) * (w // self.scale)).sum())


def check_image_file(path: Path, scale: int) -> ImageFile:
    """The sizes and digest of an image file of this schema with LR at `scale`; else a ValueError naming `path`
    (FileNotFoundError when it does not exist). Reads the sizes table and attributes only."""
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        if not Path(path).exists():
            raise FileNotFoundError(f"no image file at {path}") from error
        raise ValueError(f"{path}: not an HDF5 image file ({error})") from error
    with f:
        version = f.attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"{path}: image file schema version {version}, expected {SCHEMA_VERSION}; re-run prepare")
        if not (isinstance(f.get("hr"), h5py.Group) and isinstance(f.get(f"lq/x{scale}"), h5py.Group)):
            made_for = f.attrs.get("scale")
            raise ValueError(f"{path}: has no LR images for scale {scale} (made for scale {made_for}; a "
                             f"multi-scale model needs prepare.more_scales); expected groups 'hr' and "
                             f"'lq/x{scale}', has {sorted(f)}")
        sizes = f.get("sizes")
        count = len(f["hr"])
        if not isinstance(sizes, h5py.Dataset) or sizes.shape != (count, 2) or count == 0:
            raise ValueError(f"{path}: expected a 'sizes' table (N, 2) for its N > 0 hr items, found "
                             f"{None if sizes is None else sizes.shape} for {count}")
        digest = f.attrs["digest"] if scale == f.attrs.get("scale") else f.attrs.get(f"digest_x{scale}")
        return ImageFile(Path(path), scale, sizes[:].astype(np.int64), str(digest))


