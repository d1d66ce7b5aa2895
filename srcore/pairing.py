"""Pair result images with their references by file name, as SR outputs are usually named.

For an image `babyx4.png` and a reference folder, the reference is the first of:
  1. the file of the same name (`babyx4.png`);
  2. with a suffix given (`--suffix x4`): the image's stem without it (`baby`), with any image extension;
  3. without one: the stem without a scale or result suffix that SR tools append, `x4`, `_x4`, `-x4`, `X4`
     (benchmark LR sets, DIV2K), `_SR`, `_out` (Real-ESRGAN), `_rlt` (BasicSR), with any image extension.
Two references with that stem (`baby.png`, `baby.bmp`) are ambiguous: an error lists them.
"""
from __future__ import annotations

import re
from pathlib import Path

from srcore.imageio import IMAGE_SUFFIXES

SCALE_SUFFIX = re.compile(r"(?:[_-]?[xX]\d+|[_-](?:SR|sr|out|rlt))$")


def reference_index(folder: Path) -> dict[str, list[Path]]:
    """Image files directly in `folder` by stem."""
    if not folder.is_dir():
        raise FileNotFoundError(f"reference folder {folder} does not exist or is not a folder")
    index: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            index.setdefault(path.stem, []).append(path)
    return index


def candidate_stem(stem: str, suffix: str | None) -> str | None:
    """`stem` without the given suffix, or without a known scale suffix; None when there is none to drop."""
    if suffix is not None:
        return stem[:-len(suffix)] if suffix and stem.endswith(suffix) and stem != suffix else None
    match = SCALE_SUFFIX.search(stem)
    return stem[:match.start()] if match and match.start() > 0 else None


def find_reference(image: Path, folder: Path, index: dict[str, list[Path]], suffix: str | None) -> Path:
    """The reference of `image` in `folder` (see the module docstring); a FileNotFoundError saying what
    was tried, or a ValueError listing an ambiguous stem's files."""
    same = folder / image.name
    if same.is_file():
        return same
    stem = candidate_stem(image.stem, suffix)
    found = index.get(stem, []) if stem else []
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise ValueError(f"{image}: several references named {stem}.* in {folder}: "
                         f"{', '.join(p.name for p in found)}; keep one")
    tried = f"{image.name}" + (f", {stem}.*" if stem else "")
    hint = ("" if suffix is not None else
            "; name the part to drop with --suffix (e.g. --suffix _x4)" if stem is None else
            f" ({stem} is {image.stem} without its suffix {image.stem[len(stem):]}); --suffix names another")
    raise FileNotFoundError(f"no reference for {image} in {folder}: tried {tried}{hint}")


def pair_references(images: list[Path], folder: Path, suffix: str | None = None) -> list[tuple[Path, Path]]:
    """(image, reference) for every image; the first image without one is an error."""
    index = reference_index(folder)
    return [(image, find_reference(image, folder, index, suffix)) for image in images]
