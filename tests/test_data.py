"""The in-memory patch bank: batches are a pure function of (seed, step), exact protocol pairs, split over ranks."""
from pathlib import Path

import pytest
import torch
from PIL import Image

from srcore.data import PatchBank
from srcore.patches import write_patches
from srcore.resize import downscale


def tiny_bank(seed: int = 0, n: int = 6) -> PatchBank:
    gen = torch.Generator().manual_seed(seed)
    hr = torch.randint(0, 256, (n, 3, 16, 16), generator=gen, dtype=torch.uint8)
    lq = (downscale(hr.double() / 255, 2) * 255).round().to(torch.uint8)
    return PatchBank(lq, hr, seed)


def test_batches_are_a_function_of_seed_and_step_and_stay_protocol_pairs():
    bank = tiny_bank()
    lq_a, hr_a = bank.batch(5, 4, augment=True)
    lq_b, hr_b = bank.batch(5, 4, augment=True)
    assert torch.equal(lq_a, lq_b) and torch.equal(hr_a, hr_b)
    assert not torch.equal(bank.batch(6, 4, augment=True)[1], hr_a)
    flipped = 0
    for step in range(16):  # every augmented pair is still LQ == MATLAB uint8 bicubic of HR, exactly
        lq, hr = bank.batch(step, 2, augment=True)
        assert torch.allclose(downscale(hr.double(), 2), lq.double(), atol=1e-6)
        flipped += not torch.equal(hr, bank.batch(step, 2, augment=False)[1])
    assert flipped > 8  # and augmentation does happen (3 of 4 draws flip something)


def test_batch_slices_of_all_ranks_make_the_one_process_batch():
    bank = tiny_bank()
    lq, hr = bank.batch(7, 6, augment=True)
    parts = [bank.batch(7, 6, augment=True, part=(rank, 3)) for rank in range(3)]
    assert [p[0].shape[0] for p in parts] == [2, 2, 2]
    assert torch.equal(torch.cat([p[0] for p in parts]), lq) and torch.equal(torch.cat([p[1] for p in parts]), hr)


def test_fingerprint_sees_one_grey_level():
    other = tiny_bank()
    other.hr[0, 0, 0, 0] ^= 1
    assert tiny_bank().fingerprint() == tiny_bank().fingerprint() != other.fingerprint()


def test_patch_bank_refuses_a_file_of_another_scale(tmp_path: Path):
    image = tmp_path / "a.png"
    Image.fromarray(torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8).numpy()).save(image)
    write_patches([image], tmp_path / "train.h5", scale=2, patch_size=16, stride=16, seed=0)
    assert len(PatchBank.from_h5(tmp_path / "train.h5", 0, scale=2)) == 4
    with pytest.raises(ValueError, match=r"train.h5.*scale 2, this run uses scale 4"):
        PatchBank.from_h5(tmp_path / "train.h5", 0, scale=4)
