"""Training data: random crops as a pure function of (seed, step), uniform over corners, exact protocol pairs,
split over ranks; the lazy HDF5 source gives the in-memory batches; the source choice; validation tiles."""
import resource
from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image

from srcore.data import (Crops, PatchBank, TrainingImages, available_memory, choose_source, open_training_images,
                         vm_size)
from srcore.imagefile import check_image_file
from srcore.patches import write_images
from srcore.resize import downscale

T91 = Path(__file__).resolve().parents[1] / "data" / "raw" / "train" / "T91"


def random_images(sizes: list[tuple[int, int]], scale: int = 2, seed: int = 0
                  ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Random uint8 images of the HR sizes and their protocol LR."""
    gen = torch.Generator().manual_seed(seed)
    hr = [torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8) for h, w in sizes]
    return hr, [(downscale(h.double() / 255, scale) * 255).round().to(torch.uint8) for h in hr]


@pytest.fixture(scope="module")
def image_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "train.h5"
    write_images(sorted(T91.glob("*.png"))[:3], out, scale=4, seed=0)
    return out


def test_batches_are_a_function_of_seed_and_step_and_crops_of_the_images_and_their_lr():
    hr, lq = random_images([(24, 20), (30, 18), (17, 23)])  # odd sizes: the last row/column has no LR pixel
    data = TrainingImages.in_memory(hr, lq, scale=2, patch_size=8, seed=5)
    lq_a, hr_a = data.batch(5, 4, augment=True)
    assert torch.equal(lq_a, data.batch(5, 4, augment=True)[0]) and torch.equal(hr_a, data.batch(5, 4, augment=True)[1])
    assert lq_a.shape == (4, 3, 4, 4) and hr_a.shape == (4, 3, 8, 8) and lq_a.dtype == torch.float32
    assert not torch.equal(data.batch(6, 4, augment=True)[1], hr_a)
    assert not torch.equal(TrainingImages.in_memory(hr, lq, 2, 8, seed=6).batch(5, 4, True)[1], hr_a)
    flipped = 0
    for step in range(24):
        draw = data.crops.draw(step, 3, augment=True)
        lq_b, hr_b = data.batch(step, 3, augment=True)
        dims = [d for d, flip in ((-1, draw.hflip), (-2, draw.vflip)) if flip]
        flipped += bool(dims)
        for k, (i, y, x) in enumerate(zip(draw.index.tolist(), draw.y.tolist(), draw.x.tolist())):
            expect_lq, expect_hr = lq[i][:, y:y + 4, x:x + 4], hr[i][:, 2 * y:2 * y + 8, 2 * x:2 * x + 8]
            assert torch.equal((lq_b[k].flip(dims) * 255).round().byte(), expect_lq)
            assert torch.equal((hr_b[k].flip(dims) * 255).round().byte(), expect_hr)
    assert flipped > 12  # augmentation does happen (3 of 4 draws flip something)


def test_corners_are_drawn_uniformly_over_every_aligned_corner_of_every_image():
    crops = Crops(torch.tensor([[5, 4], [3, 3], [1, 9]]), patch=2, seed=0)  # 4x3 + 2x2 corners; the 3rd too small
    seen = Counter()
    for step in range(40):
        draw = crops.draw(step, 400, augment=False)
        seen.update(zip(draw.index.tolist(), draw.y.tolist(), draw.x.tolist()))
    every = {(0, y, x) for y in range(4) for x in range(3)} | {(1, y, x) for y in range(2) for x in range(2)}
    assert set(seen) == every and crops.usable() == 2
    assert all(800 < count < 1200 for count in seen.values()), seen  # 16000 draws over 16 corners: ~1000 each
    with pytest.raises(ValueError, match=r"no image holds a crop of 5 LR pixels: the largest LR image is \(5, 4\)"):
        Crops(torch.tensor([[5, 4], [3, 3]]), patch=5, seed=0)


def test_batch_slices_of_all_ranks_make_the_one_process_batch():
    data = TrainingImages.in_memory(*random_images([(24, 20), (16, 30)]), scale=2, patch_size=8, seed=0)
    lq, hr = data.batch(7, 6, augment=True)
    parts = [data.batch(7, 6, augment=True, part=(rank, 3)) for rank in range(3)]
    assert [p[0].shape[0] for p in parts] == [2, 2, 2]
    assert torch.equal(torch.cat([p[0] for p in parts]), lq) and torch.equal(torch.cat([p[1] for p in parts]), hr)


def test_lazy_source_gives_the_in_memory_batches_from_any_step_without_drawing_the_global_rng(image_file: Path):
    memory = open_training_images(image_file, 4, 32, seed=3, source="memory", workers=0)
    in_process = open_training_images(image_file, 4, 32, seed=3, source="lazy", workers=0)
    workers = open_training_images(image_file, 4, 32, seed=3, source="lazy", workers=2)
    assert (memory.source, workers.source) == ("memory", "lazy") and memory.digest == workers.digest
    rng = torch.get_rng_state()
    expected = list(memory.batches(2, 7, 6, True, part=(1, 2)))
    for source in (in_process, workers):  # from step 2, as a resumed run starts
        got = list(source.batches(2, 7, 6, True, part=(1, 2)))
        assert len(got) == 5 and all(torch.equal(a, b) for pair in zip(got, expected) for a, b in zip(*pair))
    assert torch.equal(torch.get_rng_state(), rng)  # loaders do not move the RNG a checkpoint restores


def test_in_memory_digest_is_the_digest_prepare_stored(image_file: Path):
    memory = open_training_images(image_file, 4, 32, seed=0, source="memory", workers=0)
    rebuilt = TrainingImages.in_memory(memory.images.hr, memory.images.lq, 4, 32, seed=0)
    assert rebuilt.digest == check_image_file(image_file, 4).digest
    hr, lq = random_images([(20, 20)] * 2)
    other_hr = [t.clone() for t in hr]
    other_hr[1][2, 3, 4] ^= 1
    assert TrainingImages.in_memory(hr, lq, 2, 8, 0).digest != TrainingImages.in_memory(other_hr, lq, 2, 8, 0).digest


def test_auto_takes_memory_when_every_copy_fits_in_half_the_available_memory():
    assert choose_source("auto", nbytes=100, copies=2, available=400) == "memory"
    assert choose_source("auto", nbytes=100, copies=3, available=400) == "lazy"
    assert choose_source("memory", nbytes=10**12, copies=1, available=1) == "memory"
    with pytest.raises(ValueError, match="unknown data source 'disk'; valid: auto, memory, lazy"):
        choose_source("disk", 1, 1, 1)


def test_available_memory_counts_an_address_space_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm_size() + 300 * 2**20, hard))
    try:
        assert 250 * 2**20 < available_memory() <= 300 * 2**20
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert available_memory() > 300 * 2**20


def test_patch_size_must_be_a_multiple_of_the_scale():
    with pytest.raises(ValueError, match="patch_size=9 HR pixels must be a positive multiple of the scale 2"):
        TrainingImages.in_memory(*random_images([(20, 20)]), scale=2, patch_size=9, seed=0)


def test_validation_tiles_load_and_a_file_of_another_scale_is_refused(tmp_path: Path):
    image = tmp_path / "a.png"
    Image.fromarray(torch.randint(0, 256, (32, 48, 3), dtype=torch.uint8).numpy()).save(image)
    write_images([image], tmp_path / "val.h5", scale=2, seed=0, tile=16)
    val = PatchBank.from_h5(tmp_path / "val.h5", scale=2)
    assert len(val) == 6 and val.hr.shape == (6, 3, 16, 16) and val.lq.shape == (6, 3, 8, 8)
    assert val.digest == check_image_file(tmp_path / "val.h5", 2).digest == PatchBank(val.lq, val.hr).digest
    with pytest.raises(ValueError, match=r"val.h5: has no LR images for scale 4 \(made for scale 2;"):
        PatchBank.from_h5(tmp_path / "val.h5", scale=4)
    write_images([image], tmp_path / "whole.h5", scale=2, seed=0)
    write_images([image, T91 / "t1.png"], tmp_path / "mixed.h5", scale=2, seed=0)
    assert len(PatchBank.from_h5(tmp_path / "whole.h5", scale=2)) == 1  # one image is tiles of one size
    with pytest.raises(ValueError, match="mixed.h5: validation items must be tiles of one size"):
        PatchBank.from_h5(tmp_path / "mixed.h5", scale=2)
