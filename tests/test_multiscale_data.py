"""Multi-scale training data (issue: SRCNN/VDSR/MDSR): `prepare.more_scales` writes LR at further scales beside
the single-scale file's items, which stay byte for byte as they were; multi-scale generators train on the
scales in turn, each from its own LR."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from srcore.imagefile import check_image_file, content_digest, hr_key, lq_key
from srcore.mixed_scales import MixedScales, open_scales
from srcore.patches import write_images
from srcore.resize import downscale


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    out = []
    for i, (h, w) in enumerate([(48, 40), (30, 54), (37, 36)]):
        noise = torch.rand((3, h + 4, w + 4), generator=torch.Generator().manual_seed(i))
        pixels = (torch.nn.functional.avg_pool2d(noise[None], 5, 1)[0] * 255).round().byte()
        out.append(tmp_path / f"{i}.png")
        Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(out[-1])
    return out


def datasets(path: Path) -> dict[str, np.ndarray]:
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: found.__setitem__(name, item[:]) if isinstance(item, h5py.Dataset) else None)
    return found


def test_more_scales_add_lr_beside_the_single_scale_items(tmp_path: Path, images: list[Path]):
    single, multi = tmp_path / "single.h5", tmp_path / "multi.h5"
    write_images(images, single, scale=4, seed=0, workers=2)
    write_images(images, multi, scale=4, seed=0, more_scales=(3, 2))
    one, many = datasets(single), datasets(multi)
    assert set(many) == set(one) | {lq_key(i, s) for i in range(3) for s in (2, 3)}
    for key, array in one.items():  # the single-scale items, unchanged
        assert np.array_equal(many[key], array), key
    with h5py.File(single, "r") as f1, h5py.File(multi, "r") as f2:
        assert "scales" not in f1.attrs and "digest_x2" not in f1.attrs  # nothing new in a single-scale file
        assert f2.attrs["digest"] == f1.attrs["digest"] and list(f2.attrs["scales"]) == [4, 2, 3]
    for s in (2, 3):  # each scale's LR is the protocol's LR of the whole image, with its own digest
        pairs = [(many[hr_key(i)], many[lq_key(i, s)]) for i in range(3)]
        for hr, lq in pairs:
            expected = (downscale(torch.from_numpy(hr).double() / 255, s) * 255).round().to(torch.uint8).numpy()
            assert np.array_equal(lq, expected)
        assert check_image_file(multi, s).digest == content_digest(pairs)
    assert check_image_file(multi, 4).digest == check_image_file(single, 4).digest


def test_more_scales_are_checked(tmp_path: Path, images: list[Path]):
    with pytest.raises(ValueError, match="whole images only"):
        write_images(images, tmp_path / "t.h5", scale=4, seed=0, tile=16, more_scales=(2,))
    with pytest.raises(ValueError, match="other than the scale 4"):
        write_images(images, tmp_path / "t.h5", scale=4, seed=0, more_scales=(4,))


def test_a_multiscale_generator_trains_on_every_scale_in_turn(tmp_path: Path, images: list[Path]):
    write_images(images, tmp_path / "multi.h5", scale=4, seed=0, more_scales=(2, 3))
    write_images(images, tmp_path / "single.h5", scale=4, seed=0)
    data = open_scales(tmp_path / "multi.h5", 4, [2, 3, 4], 24, seed=1, source="memory", workers=0)
    assert isinstance(data, MixedScales) and data.scales == (2, 3, 4)
    for step, (lq, hr) in enumerate(data.batches(0, 6, 2, augment=True)):
        assert hr.shape[-1] == 24 and lq.shape[-1] == 24 // (2, 3, 4)[step % 3]
    single = open_scales(tmp_path / "multi.h5", 4, None, 24, seed=1, source="memory", workers=0)
    reference = open_scales(tmp_path / "single.h5", 4, None, 24, seed=1, source="memory", workers=0)
    assert single.digest == reference.digest  # a single-scale model trains on the same data either way
    assert all(torch.equal(a, b) for a, b in zip(single.batch(5, 2, True), reference.batch(5, 2, True)))
    with pytest.raises(ValueError, match=r"no LR images for scale 2 .*prepare.more_scales"):
        open_scales(tmp_path / "single.h5", 4, [2, 4], 24, seed=1, source="memory", workers=0)
