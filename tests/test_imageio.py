"""srcore.imageio: every format and mode decodes to the right values, 16-bit keeps full precision, writes
round-trip and are atomic, and every kind of bad file raises ImageReadError naming the file."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import png
import pytest
import torch
from PIL import Image as PILImage
from PIL import ImageFile

from srcore import imageio
from srcore.imageio import ImageReadError, list_images, quantize, read_image, to_uint8, write_png

DATA = Path(__file__).parents[1] / "data"
RNG = np.random.default_rng(0)
GENERATOR = torch.Generator().manual_seed(0)


def random_u8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def rand(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=GENERATOR)


def save(path: Path, array: np.ndarray, **options) -> Path:
    PILImage.fromarray(array).save(path, **options)
    return path


def as_u8(planes: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W, C) uint8, the layout Pillow arrays use."""
    return to_uint8(planes).permute(1, 2, 0).numpy()


def png_with_header(path: Path, width: int, height: int) -> Path:
    """A 1-bit grey PNG whose header claims width x height but whose IDAT holds only a few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def write_png16(path: Path, samples: np.ndarray, mode: str, **options) -> Path:
    """samples: (H, W, C) uint16 written with pypng as a 16-bit PNG of `mode` (L, LA, RGB, RGBA)."""
    height, width, channels = samples.shape
    writer = png.Writer(width, height, greyscale=mode.startswith("L"), alpha=mode.endswith("A"),
                        bitdepth=16, **options)
    with open(path, "wb") as file:
        writer.write(file, samples.reshape(height, width * channels))
    return path


# ---- 8-bit formats and modes ----

@pytest.mark.parametrize("name, options", [("a.png", {}), ("a.bmp", {}), ("a.tif", {}), ("a.tiff", {}),
                                           ("a.webp", {"lossless": True})])
def test_lossless_formats_round_trip_exactly(tmp_path, name, options):
    rgb = random_u8(6, 9, 3)
    image = read_image(save(tmp_path / name, rgb, **options))
    assert image.rgb.shape == (3, 6, 9) and image.rgb.dtype == torch.float32
    assert np.array_equal(as_u8(image.rgb), rgb)
    assert image.alpha is None and not image.grey and image.bit_depth == 8


def test_jpeg_is_close_to_the_source(tmp_path):
    smooth = np.linspace(0, 255, 16 * 16 * 3).reshape(16, 16, 3).astype(np.uint8)  # JPEG's easy case
    image = read_image(save(tmp_path / "a.JPG", smooth, quality=95))
    error = np.abs(as_u8(image.rgb).astype(int) - smooth).mean()
    assert error < 3 and not image.grey


def test_grey_is_flagged_and_replicated(tmp_path):
    grey = random_u8(5, 7)
    image = read_image(save(tmp_path / "g.png", grey))
    assert image.grey and image.alpha is None
    assert torch.equal(image.rgb[0], image.rgb[1]) and torch.equal(image.rgb[0], image.rgb[2])
    assert np.array_equal(as_u8(image.rgb)[..., 0], grey)


def test_one_bit_becomes_zero_or_one(tmp_path):
    bits = PILImage.fromarray(random_u8(4, 6) > 127)
    bits.save(tmp_path / "b.png")
    image = read_image(tmp_path / "b.png")
    assert image.grey and torch.equal(image.rgb[0], torch.from_numpy(np.array(bits)).float())


def test_palette_gives_palette_colours(tmp_path):
    indices = RNG.integers(0, 4, size=(5, 6)).astype(np.uint8)
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], dtype=np.uint8)
    palette = PILImage.fromarray(indices, mode="P")
    palette.putpalette(colours.flatten().tolist())
    palette.save(tmp_path / "p.png")
    image = read_image(tmp_path / "p.png")
    assert not image.grey and image.alpha is None
    assert np.array_equal(as_u8(image.rgb), colours[indices])


def test_palette_transparency_becomes_alpha(tmp_path):
    indices = np.array([[0, 1], [1, 2]], dtype=np.uint8)
    palette = PILImage.fromarray(indices, mode="P")
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    palette.save(tmp_path / "p.png", transparency=1)
    image = read_image(tmp_path / "p.png")
    assert image.alpha is not None and image.alpha.shape == (1, 2, 2)
    assert image.alpha[0].tolist() == [[1.0, 0.0], [0.0, 1.0]]


@pytest.mark.parametrize("channels, grey", [(2, True), (4, False)])
def test_alpha_is_separate_and_exact(tmp_path, channels, grey):
    pixels = random_u8(5, 6, channels)
    image = read_image(save(tmp_path / "a.png", pixels))
    assert image.grey == grey and image.rgb.shape == (3, 5, 6)
    assert np.array_equal(as_u8(image.alpha)[..., 0], pixels[..., -1])
    expected = np.repeat(pixels[..., :1], 3, axis=-1) if grey else pixels[..., :3]
    assert np.array_equal(as_u8(image.rgb), expected)


def test_cmyk_jpeg_matches_pillow_conversion(tmp_path):
    colour = (200, 30, 90)
    PILImage.new("RGB", (8, 8), colour).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    image = read_image(tmp_path / "c.jpg")
    with PILImage.open(tmp_path / "c.jpg") as reference:
        assert reference.mode == "CMYK"
        assert np.array_equal(as_u8(image.rgb), np.asarray(reference.convert("RGB")))
    assert np.abs(as_u8(image.rgb)[0, 0].astype(int) - colour).max() <= 4  # and it is the right colour


def test_committed_benchmark_images():
    bridge = read_image(DATA / "benchmark/Set14/HR/bridge.png")
    baby = read_image(DATA / "benchmark/Set5/HR/baby.png")
    assert bridge.grey and torch.equal(bridge.rgb[0], bridge.rgb[2])
    assert not baby.grey and not torch.equal(baby.rgb[0], baby.rgb[2])
    with PILImage.open(DATA / "benchmark/Set14/HR/bridge.png") as reference:
        assert np.array_equal(as_u8(bridge.rgb)[..., 0], np.asarray(reference))
    with PILImage.open(DATA / "benchmark/Set5/HR/baby.png") as reference:
        assert np.array_equal(as_u8(baby.rgb), np.asarray(reference))


# ---- 16-bit ----

def test_16bit_grey_png_and_tiff_keep_full_precision(tmp_path):
    samples = np.array([[0, 1000], [65535, 12345]], dtype=np.uint16)  # 1000/65535 is not on the 8-bit grid
    for name in ("g16.png", "g16.tif"):
        image = read_image(save(tmp_path / name, samples))
        assert image.grey and image.bit_depth == 16
        assert torch.equal((image.rgb[1] * 65535).round(), torch.from_numpy(samples).float())


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA"])
def test_16bit_colour_and_alpha_png_keep_full_precision(tmp_path, mode):
    samples = RNG.integers(0, 65536, size=(3, 4, len(mode)), dtype=np.uint16)
    samples[0, 0, 0] = 1000
    image = read_image(write_png16(tmp_path / "c16.png", samples, mode))
    colour = samples[..., :1].repeat(3, axis=-1) if mode == "LA" else samples[..., :3]
    assert image.bit_depth == 16 and image.grey == (mode == "LA")
    assert torch.equal((image.rgb * 65535).round(), torch.from_numpy(colour).permute(2, 0, 1).float())
    if mode == "RGB":
        assert image.alpha is None
    else:
        assert torch.equal((image.alpha[0] * 65535).round(), torch.from_numpy(samples[..., -1]).float())


def test_16bit_colour_key_becomes_alpha(tmp_path):
    samples = np.array([[[7, 8, 9], [1000, 2, 3]]], dtype=np.uint16)
    image = read_image(write_png16(tmp_path / "k16.png", samples, "RGB", transparent=(7, 8, 9)))
    assert image.alpha[0].tolist() == [[0.0, 1.0]]


@pytest.mark.parametrize("channels, with_alpha", [(3, False), (3, True), (1, False), (1, True)])
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_write_then_read_round_trips_on_the_grid(tmp_path, channels, with_alpha, bit_depth):
    x = rand(channels, 24, 32)
    alpha = rand(1, 24, 32) if with_alpha else None
    write_png(tmp_path / "w.png", x, alpha, bit_depth=bit_depth)
    image = read_image(tmp_path / "w.png")
    assert image.bit_depth == bit_depth and image.grey == (channels == 1)
    assert torch.equal(image.rgb, quantize(x, bit_depth).expand(3, -1, -1))
    assert image.alpha is None if alpha is None else torch.equal(image.alpha, quantize(alpha, bit_depth))


def test_8bit_write_is_what_pillow_reads(tmp_path):
    x = rand(3, 4, 5) * 1.2 - 0.1  # out-of-range values are clamped
    write_png(tmp_path / "w.png", x)
    with PILImage.open(tmp_path / "w.png") as written:
        assert written.mode == "RGB" and np.array_equal(np.asarray(written), as_u8(x))


def test_16bit_colour_tiff_is_refused_not_cut_to_8_bits(tmp_path):
    tifffile = pytest.importorskip("tifffile")  # Pillow cannot write one; scikit-image brings tifffile
    tifffile.imwrite(tmp_path / "c16.tif", np.full((2, 2, 3), 1000, dtype=np.uint16), photometric="rgb")
    with pytest.raises(ImageReadError, match="c16.tif.*16-bit colour TIFF"):
        read_image(tmp_path / "c16.tif")


# ---- writing ----

def test_write_is_atomic(tmp_path, monkeypatch):
    write_png(tmp_path / "w.png", rand(3, 4, 4))
    write_png(tmp_path / "w.png", torch.zeros(3, 4, 4))  # replaces the existing file
    assert [p.name for p in tmp_path.iterdir()] == ["w.png"]
    assert read_image(tmp_path / "w.png").rgb.max() == 0

    def fail(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(png.Writer, "write_packed", fail)  # what write_samples calls
    with pytest.raises(OSError, match="disk full"):
        write_png(tmp_path / "w.png", torch.ones(3, 4, 4))
    assert [p.name for p in tmp_path.iterdir()] == ["w.png"]  # no temporary left, old file intact
    assert read_image(tmp_path / "w.png").rgb.max() == 0


@pytest.mark.parametrize("image, alpha, bit_depth, message", [
    (rand(2, 4, 4), None, 8, r"\(2, 4, 4\)"),
    (rand(3, 4, 4), rand(1, 4, 5), 8, r"\(1, 4, 5\)"),
    (rand(3, 4, 4), None, 12, "bit_depth=12"),
])
def test_write_png_rejects_bad_arguments(tmp_path, image, alpha, bit_depth, message):
    with pytest.raises(ValueError, match=message):
        write_png(tmp_path / "w.png", image, alpha, bit_depth=bit_depth)
    assert not list(tmp_path.iterdir())


def test_quantize_and_to_uint8():
    x = torch.tensor([-0.5, 0.0, 0.31, 1.0, 1.5], dtype=torch.float64)
    assert to_uint8(x).tolist() == [0, 0, 79, 255, 255]
    assert torch.equal(quantize(x), to_uint8(x).double() / 255) and quantize(x).dtype == torch.float64
    assert quantize(x, 16)[2].item() == round(0.31 * 65535) / 65535
    with pytest.raises(ValueError, match="bit_depth=4"):
        quantize(x, 4)


@pytest.mark.parametrize("bit_depth, hex_value", [(8, "0x1.9c9c9cp-1"), (16, "0x1.569456p-1")])
def test_grid_rounding_is_exact_for_float32(tmp_path, bit_depth, hex_value):
    # float32 x * levels is itself rounded for these values and would tip them onto the wrong grid step
    x = torch.tensor([float.fromhex(hex_value)], dtype=torch.float32)
    nearest = round(float.fromhex(hex_value) * (2**bit_depth - 1))  # exact in float64
    assert (x * (2**bit_depth - 1)).round().item() != nearest
    assert (quantize(x, bit_depth) * (2**bit_depth - 1)).round().item() == nearest
    assert bit_depth == 16 or to_uint8(x).item() == nearest
    write_png(tmp_path / "x.png", x.reshape(1, 1, 1), bit_depth=bit_depth)
    assert torch.equal(read_image(tmp_path / "x.png").rgb[0, 0], quantize(x, bit_depth))


# ---- bad files ----

def corrupt(path: Path) -> None:
    data = bytearray((save(path, random_u8(32, 32, 3))).read_bytes())
    data[60:80] = b"\xff" * 20  # inside IDAT: the zlib stream breaks (Pillow skips IDAT CRCs)
    path.write_bytes(bytes(data))


def truncated(path: Path) -> None:
    path.write_bytes(save(path, random_u8(32, 32, 3)).read_bytes()[:1500])


def truncated_16bit(path: Path) -> None:
    data = write_png16(path, RNG.integers(0, 65536, (16, 16, 3), dtype=np.uint16), "RGB").read_bytes()
    path.write_bytes(data[:len(data) // 2])


def truncated_jpeg(path: Path) -> None:
    path.write_bytes(save(path, random_u8(64, 64, 3)).read_bytes()[:2000])


@pytest.mark.parametrize("name, make, problem", [
    ("corrupt.png", corrupt, "broken data stream"),
    ("half.png", truncated, "truncated"),
    ("half16.png", truncated_16bit, "too short"),
    ("half.jpg", truncated_jpeg, "truncated"),
    ("empty.png", lambda p: p.write_bytes(b""), "cannot identify"),
    ("notes.png", lambda p: p.write_text("not an image\n"), "cannot identify"),
    ("bomb.png", lambda p: png_with_header(p, 20_000, 20_000), "decompression bomb"),
])
def test_bad_files_raise_image_read_error_naming_the_file(tmp_path, name, make, problem):
    make(tmp_path / name)
    with pytest.raises(ImageReadError, match=problem) as error:
        read_image(tmp_path / name)
    assert name in str(error.value)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns, then we refuse
def test_images_over_max_pixels_are_refused_before_decoding(tmp_path, monkeypatch):
    png_with_header(tmp_path / "big.png", 12_000, 12_000)  # between Pillow's warning and error limits
    with pytest.raises(ImageReadError, match="big.png.*MAX_PIXELS"):
        read_image(tmp_path / "big.png")
    save(tmp_path / "small.png", random_u8(10, 10, 3))
    read_image(tmp_path / "small.png")
    monkeypatch.setattr(imageio, "MAX_PIXELS", 99)
    with pytest.raises(ImageReadError, match=r"small.png: 10x10 = 100 pixels.*MAX_PIXELS = 99"):
        read_image(tmp_path / "small.png")


def test_unsupported_modes_are_refused(tmp_path):
    save(tmp_path / "i32.tif", np.array([[0, 70_000]], dtype=np.int32))
    save(tmp_path / "f.tif", np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ImageReadError, match=r"i32.tif: mode I values span \[0, 70000\]"):
        read_image(tmp_path / "i32.tif")
    with pytest.raises(ImageReadError, match="f.tif: pixel mode 'F' is not supported"):
        read_image(tmp_path / "f.tif")


def test_missing_file_and_truncation_switch(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nothing.png"):
        read_image(tmp_path / "nothing.png")
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        read_image(save(tmp_path / "a.png", random_u8(2, 2, 3)))


# ---- listing ----

def test_list_images_sorts_and_filters(tmp_path):
    for name in ("b.PNG", "a.jpeg", "c.tif", "notes.txt", "d.png.tmp", "noext"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()  # a folder, even one named like an image, is not listed
    (tmp_path / "sub.png" / "e.png").write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpeg", "b.PNG", "c.tif"]


def test_list_images_errors(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match=f"no images in {tmp_path}"):
        list_images(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing"):
        list_images(tmp_path / "missing")
