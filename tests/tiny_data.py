"""Tiny training data the engine and recipe tests share (a helper module, not a test file; pytest's
`pythonpath` setting puts tests/ on the import path): random x2 images and validation tiles."""
from __future__ import annotations

import torch

from srcore.data import PatchBank, TrainingImages
from srcore.resize import downscale


def tiny_images(seed: int = 0, n: int = 6, cls: type = TrainingImages, nudge: bool = False) -> TrainingImages:
    """n random 24x20 images and their x2 LR, trained on in random 16-px crops (nudge: one pixel one level up)."""
    gen = torch.Generator().manual_seed(seed)
    hr = [torch.randint(0, 255, (3, 24, 20), generator=gen, dtype=torch.uint8) for _ in range(n)]
    hr[0][0, 0, 0] += nudge
    lq = [(downscale(h.double() / 255, 2) * 255).round().to(torch.uint8) for h in hr]
    return cls.in_memory(hr, lq, scale=2, patch_size=16, seed=seed)


def tiny_val(n: int = 4) -> PatchBank:
    """n validation tiles of 16 px and their x2 LR."""
    hr = torch.randint(0, 256, (n, 3, 16, 16), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    return PatchBank((downscale(hr.double() / 255, 2) * 255).round().to(torch.uint8), hr)
