"""Where training batches come from: random crops of the images of a `prepare` file.

Batch k is a pure function of (seed, k): which images, where in them and which flips are drawn from a generator
seeded with (seed, k) (`Crops`), so a resumed run sees the very batches an uninterrupted one would, and under
torchrun every rank draws the same global batch and keeps its own slice of it. A crop's corner is drawn
uniformly over every LR-aligned corner of every image, so each pixel of the training set is about as likely
as any other, whatever the image sizes. Naming: `lq` is the low-quality (low-resolution) input, `hr` its
high-resolution target; `lr` is only ever a learning rate.

Two sources give the same batches, byte for byte (`runtime.data_source`):
- memory: every image in RAM, cropped in the training process. On 2 cores this is the fast one (loader
  workers compete with the training threads); the default training set is ~115 MB of uint8.
- lazy: only the crops are read from the HDF5 file (srcore.imagefile), in DataLoader worker processes, so
  memory stays bounded whatever the file's size (docs/data.md).
`auto` takes memory when the file fits in half the available memory, counting one copy per process of the node.
"""
from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from srcore.imagefile import check_image_file, content_digest, hr_key, lq_key

SOURCES = ("auto", "memory", "lazy")
MEMORY_SHARE = 0.5  # auto: the images may take this share of available memory, the rest is for training
PREFETCH = 4        # batches each loader worker prepares ahead: bounds the lazy source's memory with its workers

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Draw:
    """One batch's crops: image index, LR top-left corner (y, x), all (B,) int64; flips of the whole batch."""
    index: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor
    hflip: bool
    vflip: bool


class Crops:
    """Which crop of which image each batch takes: a pure function of (seed, step).

    lq_sizes: (N, 2) LR (h, w) of the images; patch: LR crop side. Image i has (h - p + 1)(w - p + 1) corners;
    a draw is uniform over all corners of all images (images smaller than the crop are never drawn).
    """

    def __init__(self, lq_sizes: torch.Tensor, patch: int, seed: int):
        spans = (lq_sizes - patch + 1).clamp(min=0)  # (N, 2) corners per axis
        self.counts = spans[:, 0] * spans[:, 1]
        self.ends = self.counts.cumsum(0)
        self.widths = spans[:, 1].clamp(min=1)
        self.patch, self.seed = patch, seed
        if int(self.ends[-1]) == 0:
            raise ValueError(f"no image holds a crop of {patch} LR pixels: the largest LR image is "
                             f"{tuple(lq_sizes.max(0).values.tolist())}")

    def draw(self, step: int, size: int, augment: bool, part: tuple[int, int] = (0, 1)) -> Draw:
        """The crops of batch `step` of `size`; part = (rank, world): the rank-th of `world` equal contiguous
        slices of the global batch, so the slices of all ranks together are exactly the one-process batch."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        corner = torch.randint(int(self.ends[-1]), (size,), generator=gen)
        rank, world = part
        corner = corner.chunk(world)[rank]  # the flips below are drawn after: the same on every rank
        hflip, vflip = torch.randint(2, (2,), generator=gen).tolist() if augment else (0, 0)
        index = torch.searchsorted(self.ends, corner, right=True)
        offset = corner - (self.ends[index] - self.counts[index])
        return Draw(index, offset // self.widths[index], offset % self.widths[index], bool(hflip), bool(vflip))

    def usable(self) -> int:
        """How many images hold at least one crop."""
        return int((self.counts > 0).sum())


class MemoryImages:
    """Images held in memory: hr[i] (3, H, W) and lq[i] (3, H//s, W//s) uint8."""

    def __init__(self, hr: Sequence[torch.Tensor], lq: Sequence[torch.Tensor]):
        self.hr, self.lq = list(hr), list(lq)

    def crop(self, i: int, y: int, x: int, p: int, s: int) -> Batch:
        """LR (3, p, p) at (y, x) and its HR (3, sp, sp) at (sy, sx), uint8 views."""
        return self.lq[i][:, y:y + p, x:x + p], self.hr[i][:, s * y:s * (y + p), s * x:s * (x + p)]


class H5Images:
    """The images of an HDF5 image file, read crop by crop; each process opens the file for itself."""

    def __init__(self, path: Path, scale: int):
        self.path, self.scale = Path(path), scale
        self._file, self._pid = None, None

    def crop(self, i: int, y: int, x: int, p: int, s: int) -> Batch:
        if self._pid != os.getpid():  # a forked worker must not share its parent's HDF5 handle
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        lq = self._file[lq_key(i, self.scale)][:, y:y + p, x:x + p]  # reads only the chunks the crop overlaps
        hr = self._file[hr_key(i)][:, s * y:s * (y + p), s * x:s * (x + p)]
        return torch.from_numpy(lq), torch.from_numpy(hr)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_pid": None}


class TrainingImages:
    """Training batches: `Crops` of images from memory or from the file (see the module docstring).

    images: MemoryImages or H5Images; lq_sizes (N, 2); scale; patch_size: HR crop side (a multiple of scale);
    digest: the content digest of the images (the run identity names the data by it); workers: DataLoader
    processes that make the batches (0: this process).
    """

    def __init__(self, images: MemoryImages | H5Images, lq_sizes: torch.Tensor, scale: int, patch_size: int,
                 seed: int, digest: str, workers: int = 0):
        if patch_size % scale or patch_size < scale:
            raise ValueError(f"patch_size={patch_size} HR pixels must be a positive multiple of the scale {scale}")
        self.images, self.scale, self.patch_size, self.digest, self.workers = images, scale, patch_size, digest, workers
        self.source = "lazy" if isinstance(images, H5Images) else "memory"
        try:
            self.crops = Crops(lq_sizes, patch_size // scale, seed)
        except ValueError as error:
            raise ValueError(f"patch_size={patch_size} at scale {scale}: {error}") from None

    @classmethod
    def in_memory(cls, hr: Sequence[torch.Tensor], lq: Sequence[torch.Tensor], scale: int, patch_size: int,
                  seed: int) -> "TrainingImages":
        """From uint8 images (3, H, W) and their LR (3, H//s, W//s); the digest is computed as prepare does."""
        sizes = torch.tensor([tuple(t.shape[1:]) for t in lq], dtype=torch.int64).reshape(-1, 2)
        digest = content_digest((h.numpy(), l.numpy()) for h, l in zip(hr, lq))
        return cls(MemoryImages(hr, lq), sizes, scale, patch_size, seed, digest)

    def __len__(self) -> int:
        return len(self.crops.counts)

    def describe(self) -> str:
        usable, side = self.crops.usable(), self.patch_size
        small = f", {len(self) - usable} smaller than {side}x{side} never drawn" if usable < len(self) else ""
        return f"{len(self)} images{small}, {self.source} source"

    def batch(self, step: int, size: int, augment: bool, part: tuple[int, int] = (0, 1)) -> Batch:
        """(lq, hr) float32 in [0, 1]: (B, 3, p, p), (B, 3, sp, sp), randomly flipped together (B = size / world)."""
        draw = self.crops.draw(step, size, augment, part)
        p = self.crops.patch
        pairs = [self.images.crop(i, y, x, p, self.scale)
                 for i, y, x in zip(draw.index.tolist(), draw.y.tolist(), draw.x.tolist())]
        lq, hr = torch.stack([pair[0] for pair in pairs]), torch.stack([pair[1] for pair in pairs])  # uint8
        # Horizontal and vertical flips (so also the 180-degree turn) commute exactly with MATLAB's uint8
        # bicubic, so pairs stay exact protocol pairs. 90-degree turns do not: they swap which 1-D pass is
        # rounded first and move ~15% of LR pixels by a grey level, so they are left out.
        flips = [dim for dim, flip in ((-1, draw.hflip), (-2, draw.vflip)) if flip]
        if flips:
            lq, hr = lq.flip(flips), hr.flip(flips)  # on uint8: a quarter of the bytes of float
        return lq.float().div_(255), hr.float().div_(255)

    def batches(self, start: int, stop: int, size: int, augment: bool, part: tuple[int, int] = (0, 1)
                ) -> Iterator[Batch]:
        """batch(k) for k in [start, stop), in order: made here, or by `workers` loader processes ahead of use."""
        if self.workers == 0:
            for step in range(start, stop):
                yield self.batch(step, size, augment, part)
            return
        loader = DataLoader(StepBatches(self, size, augment, part), batch_size=None, sampler=range(start, stop),
                            num_workers=self.workers, prefetch_factor=PREFETCH,
                            generator=torch.Generator())  # its own generator: the global RNG is not drawn from
        batches = iter(loader)
        try:
            yield from batches
        finally:
            del batches  # its last reference: the workers stop now, however the loop ended


class StepBatches(Dataset):
    """Item k = data.batch(k, ...): a DataLoader over it yields the training loop's batches."""

    def __init__(self, data: TrainingImages, size: int, augment: bool, part: tuple[int, int]):
        self.data, self.size, self.augment, self.part = data, size, augment, part

    def __getitem__(self, step: int) -> Batch:
        return self.data.batch(step, self.size, self.augment, self.part)


def open_training_images(path: Path, scale: int, patch_size: int, seed: int, source: str, workers: int,
                         copies: int = 1) -> TrainingImages:
    """The training images of a `prepare` file, from the source `source` names (auto: `choose_source`).
    copies: processes on this machine that each open the data (their memory adds up)."""
    info = check_image_file(Path(path), scale)
    lq_sizes = torch.from_numpy(info.sizes) // scale
    if choose_source(source, info.nbytes(), copies, available_memory()) == "lazy":
        images: MemoryImages | H5Images = H5Images(info.path, scale)
    else:
        with h5py.File(info.path, "r") as f:
            images = MemoryImages([torch.from_numpy(f[hr_key(i)][:]) for i in range(len(lq_sizes))],
                                  [torch.from_numpy(f[lq_key(i, scale)][:]) for i in range(len(lq_sizes))])
        workers = 0  # cropping from memory is faster here than shipping batches from other processes
    try:
        return TrainingImages(images, lq_sizes, scale, patch_size, seed, info.digest, workers)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def choose_source(source: str, nbytes: int, copies: int, available: int) -> str:
    """`source` itself, or for auto: memory when `copies` copies of `nbytes` fit in MEMORY_SHARE of `available`."""
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; valid: {', '.join(SOURCES)}")
    if source != "auto":
        return source
    return "memory" if nbytes * copies <= MEMORY_SHARE * available else "lazy"


def available_memory() -> int:
    """Bytes this process may still use: the least of the kernel's MemAvailable, the cgroup's limit less its
    usage (v2, then v1) and the address-space limit (RLIMIT_AS) less this process's size."""
    limits = [meminfo_available()]
    for limit, usage in (("memory.max", "memory.current"), ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        with contextlib.suppress(OSError, ValueError):  # no such cgroup file, or "max": no limit there
            limits.append(int(Path("/sys/fs/cgroup", limit).read_text()) - int(Path("/sys/fs/cgroup", usage).read_text()))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(soft - vm_size())
    return max(0, min(limits))


def meminfo_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise ValueError("/proc/meminfo has no MemAvailable line")


def vm_size() -> int:
    """This process's virtual size in bytes (what RLIMIT_AS limits)."""
    return int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")


class PatchBank:
    """Validation tiles held in memory: lq (N, 3, p, p) and hr (N, 3, sp, sp) uint8, with their digest."""

    def __init__(self, lq: torch.Tensor, hr: torch.Tensor, digest: str | None = None):
        if lq.shape[0] != hr.shape[0] or lq.shape[0] == 0:
            raise ValueError(f"patch bank needs as many LQ as HR patches (> 0), got {lq.shape[0]} and {hr.shape[0]}")
        self.lq, self.hr = lq, hr
        self.digest = digest or content_digest(zip(hr.numpy(), lq.numpy()))

    @classmethod
    def from_h5(cls, path: str | Path, scale: int) -> "PatchBank":
        """The tiles of a `prepare` validation file; a file of another scale or schema, or whose items
        differ in size, is a ValueError naming it."""
        info = check_image_file(Path(path), scale)
        if len({tuple(size) for size in info.sizes.tolist()}) != 1:
            raise ValueError(f"{path}: validation items must be tiles of one size, found sizes "
                             f"{sorted({tuple(size) for size in info.sizes.tolist()})[:4]}...")
        with h5py.File(path, "r") as f:
            lq = np.stack([f[lq_key(i, scale)][:] for i in range(len(info.sizes))])
            hr = np.stack([f[hr_key(i)][:] for i in range(len(info.sizes))])
        return cls(torch.from_numpy(lq), torch.from_numpy(hr), info.digest)

    def __len__(self) -> int:
        return self.lq.shape[0]
