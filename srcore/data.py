"""Where training batches come from: the patches of a `prepare` file, held in memory.

Batch k is a pure function of (seed, k), so a resumed run sees the very batches an uninterrupted one would,
and under torchrun every rank draws the same global batch and keeps its own slice of it. Naming: `lq` is the
low-quality (low-resolution) input, `hr` its high-resolution target; `lr` is only ever a learning rate.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import torch

from srcore.patches import check_patch_file


class PatchBank:
    """LQ/HR uint8 patches held in memory; batch k is a pure function of (seed, k).

    On 2 cores, indexing tensors in the training process beats DataLoader workers, which compete with
    the training threads; the whole default training set is a few hundred MB of uint8.
    """

    def __init__(self, lq: torch.Tensor, hr: torch.Tensor, seed: int):
        if lq.shape[0] != hr.shape[0] or lq.shape[0] == 0:
            raise ValueError(f"patch bank needs as many LQ as HR patches (> 0), got {lq.shape[0]} and {hr.shape[0]}")
        self.lq, self.hr, self.seed = lq, hr, seed  # (N, 3, p, p), (N, 3, sp, sp) uint8
        self._fingerprint: str | None = None

    @classmethod
    def from_h5(cls, path: str | Path, seed: int, scale: int) -> "PatchBank":
        """The patches of a `prepare` file; a file of another scale or schema is a ValueError naming it."""
        check_patch_file(Path(path), scale)
        with h5py.File(path, "r") as f:
            return cls(torch.from_numpy(f["lq"][:]), torch.from_numpy(f["hr"][:]), seed)

    def __len__(self) -> int:
        return self.lq.shape[0]

    def fingerprint(self) -> str:
        """sha256 of the patches: a checkpoint trained on other data must not be resumed. Computed once
        (hundreds of MB): the patches are not to be modified after it."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for t in (self.lq, self.hr):
                digest.update(str(tuple(t.shape)).encode())
                digest.update(t.contiguous().numpy().tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def batch(self, step: int, size: int, augment: bool, part: tuple[int, int] = (0, 1)
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(lq, hr) float32 in [0, 1]: (B, 3, p, p), (B, 3, sp, sp), randomly flipped together.

        part = (rank, world): the rank-th of `world` equal contiguous slices of the global batch of `size`
        (B = size / world), so that the slices of all ranks together are exactly the one-process batch.
        """
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        index = torch.randint(len(self), (size,), generator=gen)
        rank, world = part
        index = index.chunk(world)[rank]  # the flips below are drawn after the index: the same on every rank
        lq, hr = self.lq[index].float() / 255, self.hr[index].float() / 255
        if augment:
            # Horizontal and vertical flips (so also the 180-degree turn) commute exactly with MATLAB's
            # uint8 bicubic, so pairs stay exact protocol pairs. 90-degree turns do not: they swap which
            # 1-D pass is rounded first and move ~15% of LR pixels by a grey level, so they are left out.
            hflip, vflip = torch.randint(2, (2,), generator=gen).tolist()
            if hflip:
                lq, hr = lq.flip(-1), hr.flip(-1)
            if vflip:
                lq, hr = lq.flip(-2), hr.flip(-2)
        return lq.contiguous(), hr.contiguous()
