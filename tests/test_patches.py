"""srcore.patches: HDF5 patch files (layout, exact LR, determinism, atomic writes), the validation split."""
from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

import srcore.patches as patches
from srcore.imageio import read_image, write_png
from srcore.patches import SCHEMA_VERSION, check_patch_file, patch_grid, split_validation, write_patches
from srcore.resize import downscale

T91 = Path(__file__).resolve().parents[1] / "data" / "raw" / "train" / "T91"
GEOMETRY = dict(scale=4, patch_size=16, stride=8, seed=3)


def smooth_image(path: Path, height: int, width: int, seed: int = 0, mode: str = "RGB") -> Path:
    """A blurred random image (natural-ish, so downscale rounding ties are not special), saved as PNG."""
    noise = torch.rand((3, height + 4, width + 4), generator=torch.Generator().manual_seed(seed))
    blurred = torch.nn.functional.avg_pool2d(noise[None], 5, 1)[0]  # (3, H, W)
    pixels = (blurred * 255).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(pixels).convert(mode).save(path)
    return path


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "imgs"
    folder.mkdir()
    return [smooth_image(folder / "a.png", 40, 33, 0), smooth_image(folder / "b.png", 24, 56, 1),
            smooth_image(folder / "c.png", 17, 17, 2, mode="L")]


@pytest.fixture
def patch_file(tmp_path: Path, images: list[Path]) -> Path:
    out = tmp_path / "train.h5"
    write_patches(images, out, **GEOMETRY, attrs={"params.prepare": "{}", "split": "train"})
    return out


def test_grid_count_matches_formula():
    for h, w, p, s in [(40, 33, 16, 8), (16, 16, 16, 5), (15, 99, 16, 8), (100, 57, 24, 7)]:
        corners = patch_grid(h, w, p, s)
        rows = (h - p) // s + 1 if h >= p else 0
        cols = (w - p) // s + 1 if w >= p else 0
        assert len(corners) == rows * cols
        assert all(0 <= y <= h - p and 0 <= x <= w - p for y, x in corners)


def test_datasets_shapes_dtypes_chunks_and_attrs(patch_file: Path, images: list[Path]):
    expected = sum(len(patch_grid(*read_image(p).rgb.shape[1:], 16, 8)) for p in images)
    with h5py.File(patch_file) as f:
        hr, lq = f["hr"], f["lq"]
        assert hr.shape == (expected, 3, 16, 16) and lq.shape == (expected, 3, 4, 4)
        assert hr.dtype == lq.dtype == np.uint8
        assert hr.chunks == (1, 3, 16, 16) and lq.chunks == (1, 3, 4, 4)
        assert hr.maxshape[0] is None and lq.maxshape[0] is None
        attrs = dict(f.attrs)
    assert attrs["scale"] == 4 and attrs["patch_size"] == 16 and attrs["stride"] == 8 and attrs["seed"] == 3
    assert attrs["schema_version"] == SCHEMA_VERSION and attrs["patches"] == expected
    assert list(attrs["sources"]) == ["imgs/a.png", "imgs/b.png", "imgs/c.png"]
    assert attrs["split"] == "train" and attrs["params.prepare"] == "{}"
    assert check_patch_file(patch_file, scale=4, patch_size=16) == expected


def test_lr_is_exact_downscale_of_hr_and_hr_is_the_crop(patch_file: Path, images: list[Path]):
    with h5py.File(patch_file) as f:
        hr, lq = torch.from_numpy(f["hr"][:]), torch.from_numpy(f["lq"][:])
    assert torch.equal(lq, (downscale(hr.double() / 255, 4) * 255).round().byte())
    first = (read_image(images[0]).rgb * 255).round().byte()
    for i, (y, x) in enumerate(patch_grid(40, 33, 16, 8)):
        assert torch.equal(hr[i], first[:, y:y + 16, x:x + 16])
    grey = hr[-1]  # c.png is grey: replicated to three equal channels
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


def test_16bit_images_are_rounded_to_8_bits(tmp_path: Path):
    deep = torch.rand((3, 20, 20), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    write_png(tmp_path / "deep.png", deep, bit_depth=16)
    write_patches([tmp_path / "deep.png"], tmp_path / "out.h5", scale=4, patch_size=20, stride=20, seed=0)
    with h5py.File(tmp_path / "out.h5") as f:
        hr = torch.from_numpy(f["hr"][0])
    assert torch.equal(hr, ((deep * 65535).round() / 65535 * 255).round().byte())


def test_real_image_pairs_are_exact(tmp_path: Path):
    out = tmp_path / "real.h5"
    write_patches([T91 / "t1.png"], out, scale=4, patch_size=96, stride=96, seed=0)
    with h5py.File(out) as f:
        hr, lq = torch.from_numpy(f["hr"][:]), torch.from_numpy(f["lq"][:])
    assert len(hr) == len(patch_grid(*read_image(T91 / "t1.png").rgb.shape[1:], 96, 96)) > 0
    assert torch.equal(lq, (downscale(hr.double() / 255, 4) * 255).round().byte())


def test_same_inputs_give_same_bytes(tmp_path: Path, images: list[Path]):
    first, second = tmp_path / "1.h5", tmp_path / "2.h5"
    write_patches(images, first, **GEOMETRY, attrs={"k": 1})
    time.sleep(1.1)  # HDF5 timestamps count seconds: a stored time would now differ
    write_patches(images, second, **GEOMETRY, attrs={"k": 1})
    assert first.read_bytes() == second.read_bytes()


def test_small_and_unreadable_images_are_skipped_and_listed(tmp_path: Path, images: list[Path]):
    tiny = smooth_image(tmp_path / "imgs" / "tiny.png", 10, 40)
    broken = tmp_path / "imgs" / "broken.png"
    broken.write_bytes(images[0].read_bytes()[:100])
    with pytest.warns(UserWarning) as caught:
        stats = write_patches([images[0], tiny, broken], tmp_path / "out.h5", **GEOMETRY)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "imgs/tiny.png" in message and "imgs/broken.png" in message
    assert stats.images == 1 and stats.too_small == ("imgs/tiny.png",) and len(stats.unreadable) == 1
    with h5py.File(tmp_path / "out.h5") as f:
        assert list(f.attrs["sources"]) == ["imgs/a.png"] and len(f.attrs["skipped"]) == 2


def test_zero_patches_is_an_error_and_leaves_no_file(tmp_path: Path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    tiny = smooth_image(tmp_path / "tiny.png", 8, 8)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no patches.*broken.jpg"):
        write_patches([broken, tiny], tmp_path / "out.h5", **GEOMETRY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.jpg", "tiny.png"]


def test_bad_geometry_names_the_values(tmp_path: Path, images: list[Path]):
    with pytest.raises(ValueError, match="patch_size=18.*scale=4"):
        write_patches(images, tmp_path / "out.h5", scale=4, patch_size=18, stride=8, seed=0)


def test_failure_midway_leaves_old_file_and_no_temporary(tmp_path: Path, images: list[Path], monkeypatch):
    out = tmp_path / "out.h5"
    out.write_bytes(b"previous run")
    real, calls = patches.append, []

    def failing_append(dataset, batch):
        calls.append(dataset.name)
        if len(calls) > 2:  # after the first batch of hr and lq
            raise RuntimeError("disk full")
        real(dataset, batch)

    monkeypatch.setattr(patches, "append", failing_append)
    with pytest.raises(RuntimeError, match="disk full"):
        write_patches(images, out, **GEOMETRY)
    assert out.read_bytes() == b"previous run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "out.h5"]


def test_flips_commute_with_downscale_on_the_8bit_grid_but_transposes_do_not(patch_file: Path):
    """Why training augments with flips only (srcore.data.PatchBank): MATLAB rounds after the row pass,
    a transpose swaps the passes, and the pair would no longer be the protocol's pair (1 LSB apart)."""
    with h5py.File(patch_file) as f:
        hr, lq = torch.from_numpy(f["hr"][:]).double() / 255, torch.from_numpy(f["lq"][:]).double() / 255
    for dims in ((-1,), (-2,), (-2, -1)):
        assert torch.equal(downscale(hr.flip(dims), 4), lq.flip(dims))
    transposed = downscale(hr.transpose(-2, -1), 4) - lq.transpose(-2, -1)
    assert transposed.abs().max() * 255 == pytest.approx(1, abs=1e-9)


def test_check_patch_file_rejects_wrong_scale_and_schema(tmp_path: Path, patch_file: Path):
    with pytest.raises(ValueError, match=rf"{patch_file.name}.*scale 4.*scale 2"):
        check_patch_file(patch_file, scale=2)
    with pytest.raises(ValueError, match="patch_size 32"):
        check_patch_file(patch_file, scale=4, patch_size=32)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["scale"] = 4
        f["hr"] = np.zeros((2, 3, 8, 8), np.uint8)
    with pytest.raises(ValueError, match=rf"{other.name}.*'hr' and 'lq'"):
        check_patch_file(other, scale=4)
    with h5py.File(other, "a") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="schema version"):
        check_patch_file(other, scale=4)
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.h5"):
        check_patch_file(text, scale=4)


def test_split_validation_is_deterministic_and_disjoint(tmp_path: Path):
    paths = [tmp_path / "d" / f"{i:03d}.png" for i in range(30)]
    train, val = split_validation(paths, 5, seed=1)
    assert (train, val) == split_validation(list(reversed(paths)), 5, seed=1)
    assert len(val) == 5 and not set(train) & set(val) and sorted(train + val) == sorted(paths)
    assert split_validation(paths, 5, seed=2)[1] != val
    grown = split_validation(paths + [tmp_path / "d" / "new.png"], 5, seed=1)[1]
    assert len(set(grown) & set(val)) >= 4  # adding an image moves at most one held-out image
    with pytest.raises(ValueError, match="val_images=30"):
        split_validation(paths, 30, seed=1)


def test_parallel_workers_write_the_same_bytes_and_skip_the_same_images(tmp_path: Path, images: list[Path]):
    broken = tmp_path / "imgs" / "broken.png"
    broken.write_bytes(b"not a png")
    paths = [images[0], broken, *images[1:]]
    outs = []
    for workers in (1, 2):
        outs.append(tmp_path / f"w{workers}.h5")
        with pytest.warns(UserWarning, match="unreadable"):
            write_patches(paths, outs[-1], **GEOMETRY, workers=workers)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        write_patches(paths, tmp_path / "w0.h5", **GEOMETRY, workers=0)
