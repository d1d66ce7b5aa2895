"""HDF5 files of LR/HR patch pairs for training, written streaming (one image in memory at a time).

A file holds two uint8 datasets, `hr` (N, 3, P, P) and `lq` (N, 3, P/s, P/s) (the low-resolution input),
one patch per chunk, plus the params that made it as attributes. Every LQ patch is `resize.downscale` of its
HR patch (MATLAB bicubic on the 8-bit grid), so each pair is exactly what the SR protocol would make from that
HR crop. The same inputs and params give the same file, byte for byte. `prepare` makes the pipeline's pair
of files: training patches and held-out validation tiles.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import torch
from tqdm import tqdm

from srcore.atomic import atomic_path
from srcore.imageio import IMAGE_SUFFIXES, ImageReadError, list_images, read_image, to_uint8
from srcore.resize import downscale

SCHEMA_VERSION = 2  # 2: the low-resolution dataset is `lq` (was `lr`)
# Fixed format bounds: files do not change with the HDF5 version, and v1.10 objects allow attributes
# over 64 KiB (long source lists). Objects carry no timestamps (track_times=False).
LIBVER = ("v110", "v110")
BATCH = 8  # patches downscaled at once: bounds memory (float64 intermediates); larger is no faster


@dataclass(frozen=True)
class PatchStats:
    """What write_patches wrote: patch count, images used, and images skipped (too small / unreadable)."""
    patches: int
    images: int
    too_small: tuple[str, ...]
    unreadable: tuple[str, ...]


def source_name(path: Path) -> str:
    """`folder/file` of an image: stable across checkouts, unlike the absolute path."""
    return f"{path.parent.name}/{path.name}"


def patch_grid(height: int, width: int, patch_size: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of the patches of one image, row-major.

    floor((H - P) / stride) + 1 rows times the same for columns (none when the image is smaller than P);
    the grid is centred, so the leftover pixels are split between the two borders.
    """
    def starts(length: int) -> list[int]:
        if length < patch_size:
            return []
        count = (length - patch_size) // stride + 1
        offset = (length - patch_size - (count - 1) * stride) // 2
        return [offset + i * stride for i in range(count)]
    return [(y, x) for y in starts(height) for x in starts(width)]


def check_geometry(scale: int, patch_size: int, stride: int) -> None:
    if scale < 1 or patch_size < 1 or stride < 1:
        raise ValueError(f"scale, patch_size and stride must be >= 1, got {scale}, {patch_size}, {stride}")
    if patch_size % scale:
        raise ValueError(f"patch_size={patch_size} HR pixels is not divisible by scale={scale}; "
                         f"LR patches need a whole number of pixels")


def image_patches(path: Path, scale: int, patch_size: int, stride: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(hr, lq) uint8 batches of one image: (n, 3, P, P) and (n, 3, P/s, P/s), at most BATCH patches each.

    16-bit sources are rounded to 8 bits first, grey is replicated to RGB, alpha is dropped.
    """
    hr8 = to_uint8(read_image(path).rgb)  # (3, H, W)
    corners = patch_grid(hr8.shape[1], hr8.shape[2], patch_size, stride)
    batches = []
    for start in range(0, len(corners), BATCH):
        hr = torch.stack([hr8[:, y:y + patch_size, x:x + patch_size] for y, x in corners[start:start + BATCH]])
        lq = downscale(hr.double() / 255, scale)  # (n, 3, P/s, P/s) on the 8-bit grid
        batches.append((hr.numpy(), to_uint8(lq).numpy()))
    return batches


def create_datasets(f: h5py.File, patch_size: int, scale: int) -> tuple[h5py.Dataset, h5py.Dataset]:
    def make(name: str, side: int) -> h5py.Dataset:
        shape = (3, side, side)
        return f.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), chunks=(1, *shape),
                                dtype=np.uint8, track_times=False)
    return make("hr", patch_size), make("lq", patch_size // scale)


def append(dataset: h5py.Dataset, batch: np.ndarray) -> None:
    end = dataset.shape[0]
    dataset.resize(end + batch.shape[0], axis=0)
    dataset[end:] = batch


def write_patches(image_paths: list[Path], out: Path, *, scale: int, patch_size: int, stride: int,
                  seed: int, attrs: dict | None = None, name: Path | None = None, workers: int = 1
                  ) -> PatchStats:
    """Crop every image on a `stride` grid of `patch_size` HR patches and write the pairs to `out` (HDF5).

    Images too small for one patch and unreadable files (ImageReadError) are skipped and listed in one
    warning: a training folder with a stray bad file still trains. Zero patches in all is a ValueError.
    `seed` and `attrs` (str, int, float, bool or sequences of them) are stored as file attributes. The
    file is written atomically (srcore.atomic), so `out` is either the whole new file or untouched. `name`
    is the file that messages name (default `out`), for a caller that writes to a temporary `out` itself.
    `workers` > 1 reads and crops images in that many processes while this one writes them in input order,
    so the file is the same for any worker count; at most 2 x workers images' patches are in memory at a time.
    """
    if workers < 1:
        raise ValueError(f"write_patches: workers must be >= 1, got {workers}")
    check_geometry(scale, patch_size, stride)
    out = Path(out)
    name = out if name is None else Path(name)
    with atomic_path(out) as temporary:
        with h5py.File(temporary, "w", libver=LIBVER) as f:
            stats, sources = fill(f, image_paths, scale, patch_size, stride, name.name, workers)
            store_attrs(f, {"schema_version": SCHEMA_VERSION, "scale": scale, "patch_size": patch_size,
                            "stride": stride, "seed": seed, "patches": stats.patches, "sources": sources,
                            "skipped": stats.too_small + stats.unreadable}, attrs or {})
        warn_skipped(stats, patch_size)
        if stats.patches == 0:
            raise ValueError(f"no patches of {patch_size}x{patch_size} from {len(image_paths)} image(s) for "
                             f"{name}: too small {list(stats.too_small)}, unreadable {list(stats.unreadable)}")
    return stats


def fill(f: h5py.File, image_paths: list[Path], scale: int, patch_size: int, stride: int, label: str,
         workers: int = 1) -> tuple[PatchStats, list[str]]:
    """Append the patches of each image in order; returns the stats and the names of the images used."""
    hr, lq = create_datasets(f, patch_size, scale)
    sources, too_small, unreadable = [], [], []
    paths = [Path(p) for p in image_paths]
    crop = functools.partial(read_patches, scale=scale, patch_size=patch_size, stride=stride)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
            results = in_order(pool, crop, paths, 2 * workers) if pool else map(crop, paths)
            for path, batches in tqdm(zip(paths, results), total=len(paths), desc=f"patches -> {label}", unit="img"):
                if isinstance(batches, ImageReadError):
                    unreadable.append(f"{source_name(path)} ({batches})")
                    continue
                for hr_batch, lq_batch in batches:
                    append(hr, hr_batch)
                    append(lq, lq_batch)
                (sources if batches else too_small).append(source_name(path))
    finally:
        torch.set_num_threads(threads)
    return PatchStats(hr.shape[0], len(sources), tuple(too_small), tuple(unreadable)), sources


def read_patches(path: Path, scale: int, patch_size: int, stride: int
                 ) -> list[tuple[np.ndarray, np.ndarray]] | ImageReadError:
    """`image_patches`, or the ImageReadError of an unreadable file (returned: it crosses processes).

    One torch thread: the ops are small, and on the shared 2-core machine torch's 2 threads took 11-118 s
    for the default set (waiting for a core another job held) against 12-14 s with one thread.
    """
    torch.set_num_threads(1)
    try:
        return image_patches(path, scale, patch_size, stride)
    except ImageReadError as error:
        return error


def in_order(pool: ProcessPoolExecutor, fn, items: list, window: int) -> Iterator:
    """fn(item) for each item, computed in `pool`, yielded in input order, at most `window` in flight."""
    pending = collections.deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def store_attrs(f: h5py.File, own: dict, extra: dict) -> None:
    clash = sorted(set(own) & set(extra))
    if clash:
        raise ValueError(f"attrs {clash} would overwrite attributes write_patches sets itself")
    for key, value in {**own, **extra}.items():
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            value = np.array(value, dtype=h5py.string_dtype())  # also gives empty lists a type
        f.attrs[key] = value


def warn_skipped(stats: PatchStats, patch_size: int) -> None:
    parts = []
    if stats.too_small:
        parts.append(f"smaller than {patch_size}x{patch_size}: {', '.join(stats.too_small)}")
    if stats.unreadable:
        parts.append(f"unreadable: {'; '.join(stats.unreadable)}")
    if parts:
        count = len(stats.too_small) + len(stats.unreadable)
        warnings.warn(f"skipped {count} image(s) with no patches; " + " | ".join(parts), stacklevel=3)


def split_validation(paths: list[Path], n_val: int, seed: int) -> tuple[list[Path], list[Path]]:
    """Hold out `n_val` whole images: returns (train, val), each sorted, disjoint, covering `paths`.

    An image is picked by the hash of (seed, folder/file), so the choice is the same on every machine and
    Python version, and adding images to a folder does not reshuffle which of the old ones are held out.
    """
    paths = sorted(paths)
    if not 0 <= n_val < len(paths):
        raise ValueError(f"val_images={n_val} must be >= 0 and leave at least one of {len(paths)} images "
                         f"for training")
    def rank(path: Path) -> str:
        return hashlib.sha256(f"{seed}:{source_name(path)}".encode()).hexdigest()
    val = set(sorted(paths, key=rank)[:n_val])
    return [p for p in paths if p not in val], [p for p in paths if p in val]


def check_patch_file(path: Path, scale: int, patch_size: int | None = None) -> int:
    """Raise ValueError naming `path` unless it is a patch file of this schema for `scale` (and
    `patch_size`, when given). Returns the number of patches."""
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        if not Path(path).exists():
            raise FileNotFoundError(f"no patch file at {path}") from error
        raise ValueError(f"{path}: not an HDF5 patch file ({error})") from error
    with f:
        version = f.attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"{path}: patch schema version {version}, expected {SCHEMA_VERSION}; re-run prepare")
        if not all(isinstance(f.get(name), h5py.Dataset) for name in ("hr", "lq")):
            raise ValueError(f"{path}: needs datasets 'hr' and 'lq', has {sorted(f)}")
        hr, lq, file_scale = f["hr"], f["lq"], int(f.attrs.get("scale", 0))
        if file_scale != scale:
            raise ValueError(f"{path}: patches were made for scale {file_scale}, this run uses scale {scale}")
        p = hr.shape[-1]
        if (hr.dtype != np.uint8 or lq.dtype != np.uint8 or hr.shape[1:] != (3, p, p)
                or lq.shape != (hr.shape[0], 3, p // scale, p // scale) or hr.shape[0] == 0):
            raise ValueError(f"{path}: expected uint8 hr (N, 3, P, P) and lq (N, 3, P/{scale}, P/{scale}) with "
                             f"N > 0, got hr {hr.dtype} {hr.shape}, lq {lq.dtype} {lq.shape}")
        if patch_size is not None and p != patch_size:
            raise ValueError(f"{path}: patches are {p}x{p}, expected patch_size {patch_size}")
        return hr.shape[0]


def images_under(folder: Path) -> list[Path]:
    """The images in `folder` and in every folder below it (a training set's subsets, e.g. T91/ and BSDS200/);
    a FileNotFoundError naming `folder` when it is missing or holds no image at any depth."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist or is not a folder")
    found = [path for sub in sorted({folder, *(p for p in folder.rglob("*") if p.is_dir())})
             if any(f.suffix.lower() in IMAGE_SUFFIXES for f in sub.iterdir()) for path in list_images(sub)]
    if not found:
        raise FileNotFoundError(f"no images in {folder} or its subfolders: expected files ending in "
                                f"{', '.join(IMAGE_SUFFIXES)}")
    return found


def prepare(folders: list[Path], out_train: Path, out_val: Path, *, scale: int, seed: int, patch_size: int,
            stride: int, val_images: int, val_patch_size: int, workers: int, attrs: dict) -> list[str]:
    """The `prepare` stage's work: hold out `val_images` whole images of `folders` and their subfolders
    (split_validation), cut
    the rest into `patch_size` patches on a `stride` grid (out_train) and the held-out ones into
    non-overlapping `val_patch_size` tiles (out_val). Both files are renamed into place only once both are
    written, so a failure leaves the old pair as it was. Returns one summary line per file."""
    images = [path for folder in folders for path in images_under(folder)]
    train, val = split_validation(images, val_images, seed)
    lines = []
    with atomic_path(out_train) as train_tmp, atomic_path(out_val) as val_tmp:
        jobs = [(out_train, train_tmp, train, patch_size, stride), (out_val, val_tmp, val, val_patch_size, val_patch_size)]
        for out, temporary, paths, size, step in jobs:
            stats = write_patches(paths, temporary, scale=scale, patch_size=size, stride=step, seed=seed,
                                  attrs=attrs, name=out, workers=workers)
            lines.append(f"{out}: {stats.patches} patches from {stats.images} images "
                         f"({len(stats.too_small) + len(stats.unreadable)} skipped)")
    return lines
