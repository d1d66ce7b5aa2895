"""srcore.patches and srcore.imagefile: image files (layout, exact LR, digest, determinism, atomic writes), the
validation split."""
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
from srcore.imagefile import SCHEMA_VERSION, check_image_file, content_digest, hr_key, lq_key
from srcore.patches import patch_grid, split_validation, write_images
from srcore.resize import downscale

T91 = Path(__file__).resolve().parents[1] / "data" / "raw" / "train" / "T91"
GEOMETRY = dict(scale=4, seed=3)


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
def image_file(tmp_path: Path, images: list[Path]) -> Path:
    out = tmp_path / "train.h5"
    write_images(images, out, **GEOMETRY, attrs={"params.prepare": "{}", "split": "train"})
    return out


def items(path: Path, scale: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(hr, lq) uint8 of every item of an image file, in order."""
    with h5py.File(path) as f:
        return [(torch.from_numpy(f[hr_key(i)][:]), torch.from_numpy(f[lq_key(i, scale)][:]))
                for i in range(len(f["sizes"]))]


def test_grid_count_matches_formula():
    for h, w, p, s in [(40, 33, 16, 8), (16, 16, 16, 5), (15, 99, 16, 8), (100, 57, 24, 7)]:
        corners = patch_grid(h, w, p, s)
        rows = (h - p) // s + 1 if h >= p else 0
        cols = (w - p) // s + 1 if w >= p else 0
        assert len(corners) == rows * cols
        assert all(0 <= y <= h - p and 0 <= x <= w - p for y, x in corners)


def test_items_shapes_dtypes_chunks_sizes_and_attrs(image_file: Path, images: list[Path]):
    with h5py.File(image_file) as f:
        assert sorted(f) == ["hr", "lq", "sizes"] and sorted(f["lq"]) == ["x4"]
        assert f["sizes"][:].tolist() == [[40, 33], [24, 56], [17, 17]]
        for i, (h, w) in enumerate(f["sizes"][:]):
            hr, lq = f[hr_key(i)], f[lq_key(i, 4)]
            assert hr.shape == (3, h, w) and lq.shape == (3, h // 4, w // 4) and hr.dtype == lq.dtype == np.uint8
            assert hr.chunks == (3, min(h, 64), min(w, 64)) and lq.chunks == (3, h // 4, w // 4)
        attrs = dict(f.attrs)
    assert attrs["scale"] == 4 and attrs["tile"] == 0 and attrs["seed"] == 3 and attrs["items"] == 3
    assert attrs["schema_version"] == SCHEMA_VERSION
    assert list(attrs["sources"]) == ["imgs/a.png", "imgs/b.png", "imgs/c.png"]
    assert attrs["split"] == "train" and attrs["params.prepare"] == "{}"
    info = check_image_file(image_file, scale=4)
    assert info.sizes.tolist() == [[40, 33], [24, 56], [17, 17]] and info.nbytes() == sum(
        hr.numel() + lq.numel() for hr, lq in items(image_file))


def test_stored_digest_is_the_digest_of_the_items_and_sees_one_grey_level(image_file: Path):
    pairs = items(image_file)
    assert check_image_file(image_file, 4).digest == content_digest((h.numpy(), l.numpy()) for h, l in pairs)
    pairs[1][0][2, 5, 7] ^= 1
    assert check_image_file(image_file, 4).digest != content_digest((h.numpy(), l.numpy()) for h, l in pairs)


def test_lr_is_the_protocol_lr_of_the_whole_image_and_hr_the_image(image_file: Path, images: list[Path]):
    for (hr, lq), path in zip(items(image_file), images):
        assert torch.equal(hr, (read_image(path).rgb * 255).round().byte())
        assert torch.equal(lq, (downscale(hr.double() / 255, 4) * 255).round().byte())  # modcrop, then bicubic
    grey = items(image_file)[-1][0]  # c.png is grey: replicated to three equal channels
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


def test_tiles_are_aligned_crops_of_the_image_and_of_its_lr(tmp_path: Path):
    image = smooth_image(tmp_path / "big.png", 50, 75, seed=4)
    write_images([image], tmp_path / "val.h5", scale=4, seed=0, tile=16)
    hr8 = (read_image(image).rgb * 255).round().byte()
    lq8 = (downscale(hr8.double() / 255, 4) * 255).round().byte()  # (3, 12, 18)
    tiles = items(tmp_path / "val.h5")
    corners = patch_grid(12, 18, 4, 4)  # on the LR grid: 3 x 4 tiles, centred
    assert len(tiles) == len(corners) == 12
    for (hr, lq), (y, x) in zip(tiles, corners):
        assert torch.equal(hr, hr8[:, 4 * y:4 * y + 16, 4 * x:4 * x + 16]) and torch.equal(lq, lq8[:, y:y + 4, x:x + 4])


def test_16bit_images_are_rounded_to_8_bits(tmp_path: Path):
    deep = torch.rand((3, 20, 20), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    write_png(tmp_path / "deep.png", deep, bit_depth=16)
    write_images([tmp_path / "deep.png"], tmp_path / "out.h5", scale=4, seed=0)
    with h5py.File(tmp_path / "out.h5") as f:
        hr = torch.from_numpy(f[hr_key(0)][:])
    assert torch.equal(hr, ((deep * 65535).round() / 65535 * 255).round().byte())


def test_real_image_pairs_are_exact(tmp_path: Path):
    out = tmp_path / "real.h5"
    write_images([T91 / "t1.png"], out, scale=4, seed=0)
    ((hr, lq),) = items(out)
    assert hr.shape[1:] == read_image(T91 / "t1.png").rgb.shape[1:]
    assert torch.equal(lq, (downscale(hr.double() / 255, 4) * 255).round().byte())


def test_same_inputs_give_same_bytes(tmp_path: Path, images: list[Path]):
    first, second = tmp_path / "1.h5", tmp_path / "2.h5"
    write_images(images, first, **GEOMETRY, attrs={"k": 1})
    time.sleep(1.1)  # HDF5 timestamps count seconds: a stored time would now differ
    write_images(images, second, **GEOMETRY, attrs={"k": 1})
    assert first.read_bytes() == second.read_bytes()


def test_small_and_unreadable_images_are_skipped_and_listed(tmp_path: Path, images: list[Path]):
    tiny = smooth_image(tmp_path / "imgs" / "tiny.png", 3, 40)
    broken = tmp_path / "imgs" / "broken.png"
    broken.write_bytes(images[0].read_bytes()[:100])
    with pytest.warns(UserWarning) as caught:
        stats = write_images([images[0], tiny, broken], tmp_path / "out.h5", **GEOMETRY)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "imgs/tiny.png" in message and "imgs/broken.png" in message
    assert stats.images == 1 and stats.too_small == ("imgs/tiny.png",) and len(stats.unreadable) == 1
    with h5py.File(tmp_path / "out.h5") as f:
        assert list(f.attrs["sources"]) == ["imgs/a.png"] and len(f.attrs["skipped"]) == 2


def test_zero_items_is_an_error_and_leaves_no_file(tmp_path: Path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    tiny = smooth_image(tmp_path / "tiny.png", 3, 3)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no images of at least 4x4 .*broken.jpg"):
        write_images([broken, tiny], tmp_path / "out.h5", **GEOMETRY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.jpg", "tiny.png"]


def test_bad_geometry_names_the_values(tmp_path: Path, images: list[Path]):
    with pytest.raises(ValueError, match="tile=18 HR pixels is not divisible by scale=4"):
        write_images(images, tmp_path / "out.h5", scale=4, tile=18, seed=0)


def test_failure_midway_leaves_old_file_and_no_temporary(tmp_path: Path, images: list[Path], monkeypatch):
    out = tmp_path / "out.h5"
    out.write_bytes(b"previous run")
    real, calls = patches.write_item, []

    def failing_write(*args, **kwargs):
        calls.append(args[1])
        if len(calls) > 1:  # after the first item
            raise RuntimeError("disk full")
        real(*args, **kwargs)

    monkeypatch.setattr(patches, "write_item", failing_write)
    with pytest.raises(RuntimeError, match="disk full"):
        write_images(images, out, **GEOMETRY)
    assert out.read_bytes() == b"previous run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "out.h5"]


def test_flips_commute_with_downscale_on_the_8bit_grid_but_transposes_do_not(tmp_path: Path):
    """Why training augments with flips only (srcore.data): MATLAB rounds after the row pass, a transpose
    swaps the passes, and the pair would no longer be the protocol's pair (1 LSB apart)."""
    image = smooth_image(tmp_path / "square.png", 32, 32, seed=6)
    write_images([image], tmp_path / "one.h5", scale=4, seed=0)
    ((hr, lq),) = items(tmp_path / "one.h5")
    hr, lq = hr.double() / 255, lq.double() / 255
    for dims in ((-1,), (-2,), (-2, -1)):
        assert torch.equal(downscale(hr.flip(dims), 4), lq.flip(dims))
    transposed = downscale(hr.transpose(-2, -1), 4) - lq.transpose(-2, -1)
    assert transposed.abs().max() * 255 == pytest.approx(1, abs=1e-9)


def test_check_image_file_rejects_wrong_scale_and_schema(tmp_path: Path, image_file: Path):
    with pytest.raises(ValueError, match=rf"{image_file.name}: has no LR images for scale 2 \(made for scale 4;"):
        check_image_file(image_file, scale=2)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.create_group("hr")
        f.create_group("lq/x4")
    with pytest.raises(ValueError, match=rf"{other.name}: expected a 'sizes' table"):
        check_image_file(other, scale=4)
    with h5py.File(other, "a") as f:
        f.attrs["schema_version"] = 2  # the fixed-patch files of earlier versions
    with pytest.raises(ValueError, match="schema version 2, expected 3; re-run prepare"):
        check_image_file(other, scale=4)
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.h5"):
        check_image_file(text, scale=4)
    with pytest.raises(FileNotFoundError, match="no image file at"):
        check_image_file(tmp_path / "missing.h5", scale=4)


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
            write_images(paths, outs[-1], **GEOMETRY, workers=workers)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        write_images(paths, tmp_path / "w0.h5", **GEOMETRY, workers=0)
