"""A training data source that mixes scales: one PatchBank per scale, each batch drawn from one of them.

The engine asks any data source for `batch(step, size, augment, part) -> (lq, hr)` and `fingerprint()`;
MixedScales answers with the banks in turn (step k: the k-th scale of the cycle, k mod the number of scales),
so every scale gets the same number of steps and batch k stays a pure function of (seed, k) for exact
resumes. The scale travels in the shapes (hr is s x lq): the pretrain recipe reads it with
srcore.multiscale.batch_scale and runs a multi-scale model (MDSR, VDSR) at it.

One scale per batch is how EDSR-PyTorch trains MDSR (a random scale per batch; a fixed cycle here). VDSR's
paper mixes scales inside a batch; a pre-upsampling network sees the same pixels either way, only the
grouping of its gradient steps differs.
"""
from __future__ import annotations

import hashlib

import torch

from srcore.data import PatchBank
from srcore.multiscale import batch_scale


class MixedScales:
    """banks: scale -> PatchBank of that scale's LQ/HR pairs (they may share their HR tensor)."""

    def __init__(self, banks: dict[int, PatchBank]):
        if not banks:
            raise ValueError("MixedScales needs at least one scale's PatchBank, got none")
        for scale, bank in banks.items():
            found = batch_scale(bank.lq[:1], bank.hr[:1])
            if found != scale:
                raise ValueError(f"MixedScales: the bank given for x{scale} holds x{found} pairs "
                                 f"(lq {tuple(bank.lq.shape[1:])}, hr {tuple(bank.hr.shape[1:])})")
        self.banks = dict(sorted(banks.items()))
        self.scales = tuple(self.banks)

    def scale_of(self, step: int) -> int:
        """The scale of batch `step`."""
        return self.scales[step % len(self.scales)]

    def batch(self, step: int, size: int, augment: bool, part: tuple[int, int] = (0, 1)
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(lq, hr) of scale s = scale_of(step): float32 in [0, 1], (B, 3, p, p) and (B, 3, sp, sp); see
        PatchBank.batch for `part` and the flips."""
        return self.banks[self.scale_of(step)].batch(step, size, augment, part)

    def fingerprint(self) -> str:
        """sha256 over every scale's bank fingerprint: a run on other data, or other scales, does not resume."""
        digest = hashlib.sha256()
        for scale, bank in self.banks.items():
            digest.update(f"x{scale}:{bank.fingerprint()};".encode())
        return digest.hexdigest()
