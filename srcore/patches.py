"""`prepare`'s work: training images -> HDF5 image files (srcore.imagefile), written streaming.

Training images are stored whole with their LR (training crops them at random, srcore.data); validation
images as non-overlapping tiles. Every LR image is the protocol's LR of the whole image, `resize.downscale`
(MATLAB bicubic of modcrop(HR, s) on the 8-bit grid); a tile's LR is the matching crop of its image's LR, at a
corner on the LR grid, so any crop at LR-aligned corners is exactly what the benchmarks feed a model. The same
inputs give the same file, byte for byte, with any number of workers.
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
from srcore.imagefile import CHUNK, LIBVER, SCHEMA_VERSION, Item, add_to_digest, write_item
from srcore.resize import downscale


@dataclass(frozen=True)
class ItemStats:
    """What write_images wrote: items, images used, and images skipped (too small / unreadable)."""
    items: int
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


def check_geometry(scale: int, tile: int, stride: int) -> None:
    if scale < 1 or tile < 0 or stride < 1:
        raise ValueError(f"scale and stride must be >= 1 and tile >= 0 (0: whole images), got scale {scale}, "
                         f"tile {tile}, stride {stride}")
    for name, size in (("tile", tile), ("stride", stride)):
        if size % scale:
            raise ValueError(f"{name}={size} HR pixels is not divisible by scale={scale}; LR tiles need a whole "
                             f"number of pixels")


def image_items(path: Path, scale: int, tile: int, stride: int) -> list[Item]:
    """The items of one image: [(hr, lq)] for tile 0 (the whole image), else its tile x tile HR tiles every
    `stride` pixels on a centred grid of the LR image (corners at multiples of `scale`) with their LR crops.
    An image smaller than `scale` (or than `tile`) gives none."""
    hr8 = to_uint8(read_image(path).rgb)  # (3, H, W)
    if min(hr8.shape[1:]) < max(scale, tile):
        return []
    lq = to_uint8(downscale(hr8.double() / 255, scale))  # (3, H//s, W//s), the whole image's protocol LR
    if tile == 0:
        return [(hr8.numpy(), lq.numpy())]
    t = tile // scale
    return [(hr8[:, scale * y:scale * y + tile, scale * x:scale * x + tile].numpy(), lq[:, y:y + t, x:x + t].numpy())
            for y, x in patch_grid(lq.shape[1], lq.shape[2], t, stride // scale)]


def write_images(image_paths: list[Path], out: Path, *, scale: int, seed: int, tile: int = 0,
                 stride: int | None = None, attrs: dict | None = None, name: Path | None = None, workers: int = 1,
                 chunk: int = CHUNK, more_scales: tuple[int, ...] = ()) -> ItemStats:
    """Write the items of every image (`image_items`: whole images, or tiles when tile > 0, every `stride`
    pixels, default `tile`) to `out` (HDF5). `more_scales`: whole images only, their LR at these scales too
    (`lq/x<s>`, digest attribute `digest_x<s>`), for multi-scale models; without them the file is the
    single-scale one, byte for byte.

    Images too small and unreadable files (ImageReadError) are skipped and listed in one warning: a
    training folder with a stray bad file still trains. Zero items in all is a ValueError. `seed` and
    `attrs` (str, int, float, bool or sequences of them) are stored as file attributes. The file is written
    atomically (srcore.atomic), so `out` is either the whole new file or untouched. `name` is the file that
    messages name (default `out`), for a caller that writes to a temporary `out` itself. `workers` > 1 reads
    and resizes images in that many processes while this one writes them in input order, so the file is the
    same for any worker count; at most 2 x workers images' items are in memory at a time. `chunk`: the
    chunk side in pixels (the benchmarks compare others).
    """
    if workers < 1:
        raise ValueError(f"write_images: workers must be >= 1, got {workers}")
    stride = stride or tile or scale
    check_geometry(scale, tile, stride)
    more_scales = check_more_scales(scale, tile, more_scales)
    out = Path(out)
    name = out if name is None else Path(name)
    with atomic_path(out) as temporary:
        with h5py.File(temporary, "w", libver=LIBVER) as f:
            stats, sources, digests = fill(f, image_paths, (scale, *more_scales), (tile, stride), name.name, workers,
                                           chunk)
            more = {"scales": [scale, *more_scales], **{f"digest_x{s}": digests[s] for s in more_scales}}
            store_attrs(f, {"schema_version": SCHEMA_VERSION, "scale": scale, "tile": tile, "stride": stride, "seed": seed,
                            "items": stats.items, "sources": sources, "skipped": stats.too_small + stats.unreadable,
                            "digest": digests[scale], **(more if more_scales else {})}, attrs or {})
        warn_skipped(stats, max(scale, tile))
        if stats.items == 0:
            raise ValueError(f"no images of at least {max(scale, tile)}x{max(scale, tile)} pixels among "
                             f"{len(image_paths)} for {name}: too small {list(stats.too_small)}, "
                             f"unreadable {list(stats.unreadable)}")
    return stats


def check_more_scales(scale: int, tile: int, more_scales: tuple[int, ...]) -> tuple[int, ...]:
    more = tuple(sorted(set(more_scales)))
    if more and tile:
        raise ValueError(f"LR at more scales {list(more)} is written for whole images only, not tiles of {tile}")
    if any(s < 2 or s == scale for s in more):
        raise ValueError(f"more scales must be >= 2 and other than the scale {scale}, got {list(more_scales)}")
    return more


def fill(f: h5py.File, image_paths: list[Path], scales: tuple[int, ...], tiles: tuple[int, int], label: str,
         workers: int = 1, chunk: int = CHUNK) -> tuple[ItemStats, list[str], dict[int, str]]:
    """Write the items of each image in order, the LR of scales[0] with them (and of scales[1:], whole images
    only), then the sizes table; returns stats, images used, and the digest of the items at each scale."""
    sources, too_small, unreadable, sizes = [], [], [], []
    digests = {s: hashlib.sha256() for s in scales}
    paths = [Path(p) for p in image_paths]
    scale, more = scales[0], scales[1:]
    items_of = functools.partial(read_items, scale=scale, tile=tiles[0], stride=tiles[1], more_scales=more)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
            results = in_order(pool, items_of, paths, 2 * workers) if pool else map(items_of, paths)
            for path, items in tqdm(zip(paths, results), total=len(paths), desc=f"images -> {label}", unit="img"):
                if isinstance(items, ImageReadError):
                    unreadable.append(f"{source_name(path)} ({items})")
                    continue
                for hr, lq, extra in items:
                    for s, lq_s in ((scale, lq), *extra.items()):
                        write_item(f, len(sizes), hr, lq_s, s, chunk, with_hr=s == scale)
                        add_to_digest(digests[s], hr, lq_s)
                    sizes.append(hr.shape[1:])
                (sources if items else too_small).append(source_name(path))
    finally:
        torch.set_num_threads(threads)
    f.create_dataset("sizes", data=np.array(sizes, dtype=np.int64).reshape(-1, 2), track_times=False)
    stats = ItemStats(len(sizes), len(sources), tuple(too_small), tuple(unreadable))
    return stats, sources, {s: digest.hexdigest() for s, digest in digests.items()}


def read_items(path: Path, scale: int, tile: int, stride: int, more_scales: tuple[int, ...] = ()
               ) -> list[tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]] | ImageReadError:
    """`image_items`, each with its LR at `more_scales` (the protocol's, of the whole item), or the
    ImageReadError of an unreadable file (returned: it crosses processes).

    One torch thread: the ops are small, and on the shared 2-core machine torch's 2 threads took 11-118 s
    for the default set (waiting for a core another job held) against 12-14 s with one thread.
    """
    torch.set_num_threads(1)
    try:
        return [(hr, lq, {s: to_uint8(downscale(torch.from_numpy(hr).double() / 255, s)).numpy() for s in more_scales})
                for hr, lq in image_items(path, scale, tile, stride)]
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
        raise ValueError(f"attrs {clash} would overwrite attributes write_images sets itself")
    for key, value in {**own, **extra}.items():
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            value = np.array(value, dtype=h5py.string_dtype())  # also gives empty lists a type
        f.attrs[key] = value


def warn_skipped(stats: ItemStats, side: int) -> None:
    parts = []
    if stats.too_small:
        parts.append(f"smaller than {side}x{side}: {', '.join(stats.too_small)}")
    if stats.unreadable:
        parts.append(f"unreadable: {'; '.join(stats.unreadable)}")
    if parts:
        count = len(stats.too_small) + len(stats.unreadable)
        warnings.warn(f"skipped {count} image(s) with no items; " + " | ".join(parts), stacklevel=3)


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


def prepare(folders: list[Path], out_train: Path, out_val: Path, *, scale: int, seed: int, val_images: int,
            val_patch_size: int, workers: int, attrs: dict, more_scales: tuple[int, ...] = ()) -> list[str]:
    """The `prepare` stage's work: hold out `val_images` whole images of `folders` and their subfolders
    (split_validation), write the rest whole to out_train (training crops them at random) and the held-out
    ones as non-overlapping `val_patch_size` tiles to out_val. Both files are renamed into place only once
    both are written, so a failure leaves the old pair as it was. Returns one summary line per file."""
    images = [path for folder in folders for path in images_under(folder)]
    train, val = split_validation(images, val_images, seed)
    lines = []
    with atomic_path(out_train) as train_tmp, atomic_path(out_val) as val_tmp:
        for out, temporary, paths, tile in ((out_train, train_tmp, train, 0), (out_val, val_tmp, val, val_patch_size)):
            stats = write_images(paths, temporary, scale=scale, seed=seed, tile=tile, attrs=attrs, name=out,
                                 workers=workers, more_scales=() if tile else tuple(more_scales))
            what = f"{stats.items} tiles of {tile}x{tile} from {stats.images} images" if tile else f"{stats.items} images"
            lines.append(f"{out}: {what} ({len(stats.too_small) + len(stats.unreadable)} skipped)")
    return lines
