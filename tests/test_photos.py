"""Photos as phones and cameras write them: EXIF orientation applied on reading, EXIF and ICC carried to
PNG, JPEG and WebP outputs, images past Pillow's pixel limit read when the caller allows them."""
from pathlib import Path

import numpy as np
import png
import pytest
from PIL import Image, ImageCms, ImageOps

from srcore.imageio import ImageReadError, read_image
from srcore.imagewrite import write_image

MAKE, TAKEN = "ExamplePhone", "2024:05:01 12:00:00"


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = MAKE
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = TAKEN
    sub[0xA002], sub[0xA003] = 1, 1  # pixel size tags, stale on purpose: writers must update them
    return exif


def pixels(image) -> np.ndarray:
    """(H, W, C) uint8 of an srcore Image."""
    return (image.rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_is_turned_upright_as_pillow_does(tmp_path: Path, orientation: int):
    stored = np.random.default_rng(orientation).integers(0, 256, (5, 8, 3), dtype=np.uint8)
    Image.fromarray(stored).save(tmp_path / "o.png", exif=camera_exif(orientation))  # lossless: exact pixels
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")).convert("RGB"))
    image = read_image(tmp_path / "o.png")
    np.testing.assert_array_equal(pixels(image), expected)
    tags = Image.Exif()
    tags.load(image.exif)
    assert tags[0x0112] == 1 and tags[0x010F] == MAKE  # upright now; the rest of the block kept


def test_sixteen_bit_png_is_turned_upright_too(tmp_path: Path):
    stored = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 3000  # (H=2, W=3, RGB)
    tiff = camera_exif(6).tobytes()[6:]  # eXIf holds the TIFF data without Pillow's "Exif\0\0" header
    with open(tmp_path / "deep.png", "wb") as file:
        chunks = [(b"eXIf", tiff)]
        writer = png.Writer(3, 2, greyscale=False, bitdepth=16)
        writer.write(file, stored.reshape(2, -1).tolist())
    data = list(png.Reader(filename=str(tmp_path / "deep.png")).chunks())
    with open(tmp_path / "deep.png", "wb") as file:
        png.write_chunks(file, [data[0], *chunks, *data[1:]])
    image = read_image(tmp_path / "deep.png")
    assert image.bit_depth == 16 and tuple(image.rgb.shape) == (3, 3, 2)  # 3 rows, 2 columns: turned
    upright = (image.rgb.permute(1, 2, 0).numpy() * 65535).round().astype(np.uint16)
    np.testing.assert_array_equal(upright, np.rot90(stored, -1))


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_exif_and_icc_reach_every_output_format(tmp_path: Path, fmt: str):
    stored = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    icc = srgb_profile()
    Image.fromarray(stored).save(tmp_path / "phone.jpg", quality=95, exif=camera_exif(6), icc_profile=icc)
    image = read_image(tmp_path / "phone.jpg")
    assert image.icc == icc
    out = tmp_path / f"out.{fmt}"
    write_image(out, pixels(image), fmt, quality=90, exif=image.exif, icc=image.icc)
    written = Image.open(out)
    tags = written.getexif()
    assert written.size == (6, 10)  # upright: 6 wide, 10 high
    assert tags[0x0112] == 1 and tags[0x010F] == MAKE and tags.get_ifd(0x8769)[0x9003] == TAKEN
    assert (tags.get_ifd(0x8769)[0xA002], tags.get_ifd(0x8769)[0xA003]) == (6, 10)
    assert written.info["icc_profile"] == icc
    assert read_image(out).exif is not None


def test_files_without_metadata_get_none(tmp_path: Path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "plain.png")
    image = read_image(tmp_path / "plain.png")
    assert image.exif is None and image.icc is None
    write_image(tmp_path / "out.png", pixels(image), "png")
    assert Image.open(tmp_path / "out.png").info.get("icc_profile") is None


@pytest.mark.parametrize("samples, fmt, match", [
    (np.zeros((4, 4, 3), np.uint16), "jpg", "8 bits"),
    (np.zeros((4, 4, 4), np.uint8), "jpg", "no alpha"),
    (np.zeros((4, 16384, 3), np.uint8), "webp", "16383 pixels"),
    (np.zeros((4, 4, 3), np.uint8), "gif", "one of png, jpg, webp"),
])
def test_what_a_format_cannot_hold_is_refused(tmp_path: Path, samples, fmt, match):
    with pytest.raises(ValueError, match=match):
        write_image(tmp_path / f"x.{fmt}", samples, fmt)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("channels, mode", [(1, "RGB"), (2, "RGBA"), (4, "RGBA")])
def test_webp_keeps_alpha_and_stores_grey_as_rgb(tmp_path: Path, channels: int, mode: str):
    samples = np.random.default_rng(1).integers(0, 256, (5, 7, channels), dtype=np.uint8)
    write_image(tmp_path / "x.webp", samples, "webp", quality=100)
    assert Image.open(tmp_path / "x.webp").mode == mode


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_max_pixels_reads_images_past_pillows_limit(tmp_path: Path, monkeypatch):
    """A real (decodable) image over Pillow's limit: refused by default and by Pillow, read with a larger
    limit, and Pillow's global limit is left as it was."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses above 2000 pixels while opening
    Image.fromarray(np.full((50, 60, 3), 7, np.uint8)).save(tmp_path / "big.png")  # 3000 pixels
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "big.png")  # Pillow's own refusal, which read_image must get past
    with pytest.raises(ImageReadError, match="3000 pixels is more than max_pixels = 2999"):
        read_image(tmp_path / "big.png", max_pixels=2999)
    assert tuple(read_image(tmp_path / "big.png", max_pixels=3000).rgb.shape) == (3, 50, 60)
    assert tuple(read_image(tmp_path / "big.png", max_pixels=0).rgb.shape) == (3, 50, 60)
    assert Image.MAX_IMAGE_PIXELS == 1000
