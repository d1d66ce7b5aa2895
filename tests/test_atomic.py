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


def every_writer(tmp_path: Path) -> dict:
    """Each library writer that goes through atomic_path, as name -> function writing one file at a path."""
    import numpy as np

    from srcore.export import export_onnx, export_safetensors
    from srcore.imageio import write_samples
    from srcore.imagewrite import write_image
    from srcore.models import build_generator
    from srcore.patches import write_images

    model = build_generator("edsr", scale=2, num_feat=4, num_block=1)
    samples = np.zeros((4, 4, 3), np.uint8)
    Image.new("RGB", (8, 8)).save(tmp_path / "src.png")
    return {
        "text": lambda p: write_text(p, "x"),
        "checkpoint": lambda p: save_checkpoint(p, {"arch": "edsr", "arch_args": {}, "model": {}}),
        "png": lambda p: write_samples(p, samples),
        "jpg": lambda p: write_image(p, samples, "jpg"),
        "webp": lambda p: write_image(p, samples, "webp"),
        "plot": lambda p: plots.save_png(Image.new("RGB", (4, 4)), p),
        "figure": lambda p: plots.bar_chart({"Set5": {"bicubic": {"psnr": 28.4}}}, "psnr", p),
        "safetensors": lambda p: export_safetensors(model, p),
        "onnx": lambda p: export_onnx(model, p),
        "h5": lambda p: write_images([tmp_path / "src.png"], p, scale=2, seed=0),
    }


def test_outputs_get_the_mode_a_plain_write_gives(tmp_path: Path):
    """safetensors creates its files 0600; no output may keep its writer's own mode: a new file gets
    0666 minus the umask, a replaced file keeps its mode."""
    import os

    writers = every_writer(tmp_path)
    old = os.umask(0o027)  # distinguishes "umask applied" (0640) from 0644 and from 0600
    try:
        for name, write in writers.items():
            fresh, kept = tmp_path / f"fresh-{name}", tmp_path / f"kept-{name}"
            write(fresh)
            kept.write_text("before")
            kept.chmod(0o604)
            write(kept)
            assert (oct(fresh.stat().st_mode & 0o777), oct(kept.stat().st_mode & 0o777)) == ("0o640", "0o604"), name
    finally:
        os.umask(old)
