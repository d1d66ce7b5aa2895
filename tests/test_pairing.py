"""Result images find their references by name: exact, then without a given or a known scale suffix."""
from pathlib import Path

import pytest

from srcore.pairing import candidate_stem, pair_references


def touch(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return [folder / name for name in names]


@pytest.mark.parametrize("stem, expected", [
    ("babyx4", "baby"), ("baby_x4", "baby"), ("baby-x2", "baby"), ("0801x4", "0801"), ("img_001X3", "img_001"),
    ("baby_SR", "baby"), ("baby_out", "baby"), ("baby_rlt", "baby"), ("baby", None), ("x4", None), ("boxer", None),
])
def test_known_scale_suffixes_are_dropped(stem: str, expected):
    assert candidate_stem(stem, None) == expected


def test_exact_name_first_then_stem_with_any_extension(tmp_path: Path):
    touch(tmp_path / "hr", "baby.png", "bird.bmp", "babyx4.png")
    images = touch(tmp_path / "sr", "babyx4.png", "birdx4.png", "bird_x4.jpg")
    pairs = pair_references(images, tmp_path / "hr")
    assert [(i.name, r.name) for i, r in pairs] == [("babyx4.png", "babyx4.png"), ("birdx4.png", "bird.bmp"),
                                                      ("bird_x4.jpg", "bird.bmp")]


def test_an_explicit_suffix_replaces_the_known_ones(tmp_path: Path):
    touch(tmp_path / "hr", "baby.png", "babyx4.png")
    images = touch(tmp_path / "sr", "baby_esrgan.png")
    assert pair_references(images, tmp_path / "hr", "_esrgan")[0][1].name == "baby.png"
    with pytest.raises(FileNotFoundError, match=r"no reference for .*baby_esrgan.png .*tried baby_esrgan.png; name "
                                                r"the part to drop with --suffix"):
        pair_references(images, tmp_path / "hr")


def test_missing_and_ambiguous_references_are_errors_that_say_what_was_tried(tmp_path: Path):
    touch(tmp_path / "hr", "bird.png", "bird.bmp")
    with pytest.raises(ValueError, match="several references named bird.* in .*: bird.bmp, bird.png"):
        pair_references(touch(tmp_path / "sr", "birdx4.png"), tmp_path / "hr")
    with pytest.raises(FileNotFoundError, match=r"tried headx4.png, head.\* \(head is headx4 without its suffix x4\)"):
        pair_references(touch(tmp_path / "sr", "headx4.png"), tmp_path / "hr")
    with pytest.raises(FileNotFoundError, match="reference folder .*nope does not exist"):
        pair_references([], tmp_path / "nope")
