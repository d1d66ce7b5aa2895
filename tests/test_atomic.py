"""Every output is written under a temporary name and renamed into place: a failed write leaves the old
file intact and no temporary behind."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch
from PIL import Image

from srcore import plots
from srcore.atomic import atomic_path, write_text
from srcore.checkpoint import load_checkpoint, save_checkpoint


def test_success_replaces_the_file_and_leaves_nothing_else(tmp_path: Path):
    target = tmp_path / "sub" / "out.json"
    write_text(target, "old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_failure_midway_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path):
    target = tmp_path / "out.json"
    write_text(target, "old")
    with pytest.raises(OSError, match="disk full"):
        with atomic_path(target) as temporary:
            temporary.write_text('{"half": ')
            raise OSError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_writer_that_writes_nothing_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="out.png"):
        with atomic_path(tmp_path / "out.png"):
            pass
    assert list(tmp_path.iterdir()) == []


def fail_midway(real):
    """A writer that writes half its output through `real`, then raises."""
    def write(*args, **kwargs):
        real(*args, **kwargs)
        raise OSError("disk full")
    return write


@pytest.mark.parametrize("kind", ["checkpoint", "figure", "png"])
def test_library_writers_leave_old_output_and_no_temporary(tmp_path: Path, monkeypatch, kind: str):
    target = tmp_path / ("model.pt" if kind == "checkpoint" else "plot.png")
    if kind == "checkpoint":
        save_checkpoint(target, {"arch": "edsr", "arch_args": {}, "model": {}, "step": 1})
        monkeypatch.setattr(torch, "save", fail_midway(torch.save))
        write = lambda: save_checkpoint(target, {"arch": "edsr", "arch_args": {}, "model": {}, "step": 2})  # noqa: E731
    elif kind == "figure":
        plots.bar_chart({"Set5": {"bicubic": {"psnr": 28.4}}}, "psnr", target)
        monkeypatch.setattr(plt.Figure, "savefig", fail_midway(plt.Figure.savefig))
        write = lambda: plots.bar_chart({"Set5": {"bicubic": {"psnr": 30.0}}}, "psnr", target)  # noqa: E731
    else:
        plots.save_png(Image.new("RGB", (4, 4)), target)
        monkeypatch.setattr(Image.Image, "save", fail_midway(Image.Image.save))
        write = lambda: plots.save_png(Image.new("RGB", (8, 8)), target)  # noqa: E731
    before = target.read_bytes()
    with pytest.raises(OSError, match="disk full"):
        write()
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    if kind == "checkpoint":
        assert load_checkpoint(target)["step"] == 1
