"""Bad-input catalogue: every case goes through a real stage entry point (the script run as __main__).

A run that cannot go on must exit with status 2 and print one line, `<stage>: error: <message>`, naming
the file or params key and what was expected, with no traceback and no output (nor temporary) left
behind. Bad images among good ones in a training folder are skipped with a warning naming them, and
the run goes on; images of every pixel mode are read as the RGB they hold.
"""
from __future__ import annotations

import re
import runpy
import struct
import sys
import zlib
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import png  # pypng
import pytest
import torch
import yaml
from PIL import Image

from srcore.checkpoint import save_checkpoint, save_generator
from srcore.models import build_generator
from srcore.patches import split_validation, write_patches

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {
    "common": {"seed": 0, "scale": 4},
    "runtime": {"device": "cpu", "precision": "fp32", "channels_last": False, "kernels": "torch", "threads": 0},
    "prepare": {"patch_size": 24, "stride": 24, "val_images": 1, "val_patch_size": 48},
    "pretrain": {"generator_args": {"num_feat": 4, "num_block": 1}, "steps": 2, "batch_size": 2},
    "gan": {"steps": 2, "batch_size": 2, "discriminator_args": {"num_feat": 4, "num_dense": 8}},
    "interpolate": {"alphas": [0.5]},
    "evaluate": {"datasets": ["Tiny"], "niqe": False, "crop_size": 16},
}


def run_script(monkeypatch, stage: str, *args: object) -> int:
    """Run stages/<stage>.py as `python stages/<stage>.py args...` does, in this process; its exit status."""
    monkeypatch.setattr(sys, "argv", [f"stages/{stage}.py", *map(str, args)])
    try:
        runpy.run_path(str(ROOT / "stages" / f"{stage}.py"), run_name="__main__")
    except SystemExit as exit_:
        return exit_.code
    return 0


def rgb_png(path: Path, size: int = 48, seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def bomb_png(path: Path, width: int = 10_000, height: int = 10_000) -> Path:
    """A PNG whose header claims width x height (over MAX_PIXELS) but whose data is a few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def tiny_generator(path: Path, scale: int = 4, arch: str = "edsr", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    save_generator(path, build_generator(arch, scale=scale, num_feat=4, num_block=1), step=1)
    return path


class Workspace:
    """tmp_path with params.yaml, a training folder of three good images, a tiny benchmark set, patch files,
    generators, and an empty out/ that a failing stage must leave empty."""

    def __init__(self, root: Path):
        self.root, self.out = root, root / "out"
        self.out.mkdir()
        self.train = root / "train"
        for i in range(3):
            rgb_png(self.train / f"good{i}.png", seed=i)
        for i in range(2):
            rgb_png(root / "bench" / "Tiny" / f"hr{i}.png", size=32, seed=10 + i)
        self.params(PARAMS)
        images = sorted(self.train.iterdir())
        write_patches(images, root / "train.h5", scale=4, patch_size=24, stride=24, seed=0)
        write_patches(images, root / "x2.h5", scale=2, patch_size=24, stride=24, seed=0)
        self.psnr, self.gan = tiny_generator(root / "psnr.pt"), tiny_generator(root / "gan.pt", seed=1)

    def params(self, params: dict, name: str = "params.yaml") -> Path:
        (self.root / name).write_text(yaml.safe_dump(params, sort_keys=False))
        return self.root / name

    def edited(self, group: str, **values) -> Path:
        """params.yaml with `values` set in `group` (None deletes the key; group=None deletes the group)."""
        params = yaml.safe_load(yaml.safe_dump(PARAMS))
        params[group].update(values)
        params[group] = {k: v for k, v in params[group].items() if v is not None}
        return self.params(params, "edited.yaml")

    def without(self, group: str) -> Path:
        return self.params({k: v for k, v in PARAMS.items() if k != group}, "edited.yaml")

    def args(self, stage: str, params: Path | None = None, **paths: Path) -> list[object]:
        """The command line of `stage`, with paths replaced by `paths` (keys as option names, _ for -)."""
        defaults = {
            "prepare": {"train": self.train, "out_train": self.out / "train.h5", "out_val": self.out / "val.h5"},
            "pretrain": {"train": self.root / "train.h5", "val": self.root / "train.h5",
                         "checkpoint": self.out / "ckpt.pt", "out": self.out / "psnr.pt", "live": self.out / "live"},
            "train_gan": {"init": self.psnr, "train": self.root / "train.h5", "val": self.root / "train.h5",
                          "checkpoint": self.out / "ckpt.pt", "out": self.out / "gan.pt", "live": self.out / "live"},
            "interpolate": {"psnr": self.psnr, "gan": self.gan, "out": self.out / "interp"},
            "evaluate": {"benchmark": self.root / "bench", "model": f"psnr={self.psnr}",
                         "out": self.out / "eval.json", "plots": self.out / "plots"},
        }[stage]
        args: list[object] = ["--params", params or self.root / "params.yaml"]
        for key, value in {**defaults, **paths}.items():
            args += [f"--{key.replace('_', '-')}", value]
        return args


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def folder_of(ws: Workspace, files: dict[str, Callable[[Path], object]]) -> Path:
    folder = ws.root / "bad"
    folder.mkdir()
    for name, make in files.items():
        make(folder / name)
    return folder


def not_a_checkpoint(ws: Workspace) -> Path:
    return write_bytes(ws.root / "notes.pt", b"a text file named .pt\n")


def truncated_checkpoint(ws: Workspace) -> Path:
    return write_bytes(ws.root / "half.pt", ws.psnr.read_bytes()[:300])


def wrong_weights(ws: Workspace) -> Path:
    """A file naming edsr whose weights are an RRDB's: another architecture's checkpoint, relabelled."""
    rrdb = build_generator("rrdb", scale=4, num_feat=4, num_block=1, num_grow_ch=4)
    edsr = build_generator("edsr", scale=4, num_feat=4, num_block=1)
    save_checkpoint(ws.root / "mixed.pt", {"arch": "edsr", "arch_args": edsr.arch_args, "model": rrdb.state_dict()})
    return ws.root / "mixed.pt"


def wrong_schema(ws: Workspace) -> Path:
    with h5py.File(ws.root / "other.h5", "w") as f:
        f["images"] = np.zeros((2, 3, 8, 8), np.uint8)
    return ws.root / "other.h5"


# (id, stage, args from the workspace, regex the one error line must match)
CASES: list[tuple[str, str, Callable[[Workspace], list[object]], str]] = [
    ("params: missing file", "prepare", lambda w: w.args("prepare", w.root / "nope.yaml"),
     r"params file \S*nope.yaml does not exist"),
    ("params: not YAML", "prepare", lambda w: w.args("prepare", write_bytes(w.root / "bad.yaml", b"common: [1,\n")),
     r"bad.yaml: not valid YAML"),
    ("params: missing group", "prepare", lambda w: w.args("prepare", w.without("prepare")),
     r"params: no group 'prepare'"),
    ("params: unknown key", "prepare", lambda w: w.args("prepare", w.edited("prepare", patchsize=24)),
     r"prepare: unknown key\(s\) patchsize; valid: patch_size, stride"),
    ("params: wrong type", "prepare", lambda w: w.args("prepare", w.edited("prepare", patch_size="24")),
     r"prepare.patch_size: expected int, got '24'"),
    ("params: scale 5", "prepare", lambda w: w.args("prepare", w.edited("common", scale=5)),
     r"common.scale: expected one of 2, 3, 4, got 5"),
    ("params: patch size not divisible by scale", "prepare",
     lambda w: w.args("prepare", w.edited("prepare", patch_size=26)),
     r"prepare.patch_size=26 is not divisible by common.scale=4; expected a multiple of 4"),
    ("params: val patch size not divisible by scale", "prepare",
     lambda w: w.args("prepare", w.edited("prepare", val_patch_size=50)), r"prepare.val_patch_size=50 is not divisible"),
    ("params: negative stride", "prepare", lambda w: w.args("prepare", w.edited("prepare", stride=-24)),
     r"prepare.stride must be > 0, got -24"),
    ("params: negative learning rate", "pretrain", lambda w: w.args("pretrain", w.edited("pretrain", lr=-1e-4)),
     r"pretrain.lr must be > 0, got -0.0001"),
    ("params: zero GAN learning rate", "train_gan", lambda w: w.args("train_gan", w.edited("gan", lr_d=0)),
     r"gan.lr_d must be > 0, got 0"),
    ("params: negative loss weight", "train_gan",
     lambda w: w.args("train_gan", w.edited("gan", adversarial_weight=-1)), r"gan.adversarial_weight must be >= 0"),
    ("params: unknown generator argument", "pretrain",
     lambda w: w.args("pretrain", w.edited("pretrain", generator_args={"nfeat": 4})),
     r"pretrain.generator_args: unknown key\(s\) nfeat for EDSR; valid: in_ch, out_ch, num_feat"),
    ("params: unknown generator", "pretrain", lambda w: w.args("pretrain", w.edited("pretrain", generator="vdsr")),
     r"pretrain.generator: expected one of 'srresnet', 'edsr', 'rrdb', got 'vdsr'"),
    ("params: alpha above 1", "interpolate", lambda w: w.args("interpolate", w.edited("interpolate", alphas=[0.5, 1.5])),
     r"interpolate.alphas: .*must be in \[0, 1\].*got 1.5"),
    ("params: alpha below 0", "interpolate", lambda w: w.args("interpolate", w.edited("interpolate", alphas=[-0.2])),
     r"interpolate.alphas: .*got -0.2"),
    ("params: unknown evaluate key", "evaluate", lambda w: w.args("evaluate", w.edited("evaluate", dataset=["Set5"])),
     r"evaluate: unknown key\(s\) dataset; valid: datasets"),
    ("training folder missing", "prepare", lambda w: w.args("prepare", train=w.root / "nowhere"),
     r"image folder \S*nowhere does not exist"),
    ("training folder without images", "prepare",
     lambda w: w.args("prepare", train=folder_of(w, {"notes.txt": lambda p: p.write_text("hi")})),
     r"no images in \S*bad: expected files ending in .png"),
    ("training folder of only bad files", "prepare", lambda w: w.args("prepare", train=folder_of(w, {
        "corrupt.png": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n garbage"), "empty.png": lambda p: p.touch(),
        "small.png": lambda p: rgb_png(p, size=20)})),
     r"no patches of 24x24 from 2 image\(s\) for \S*train.h5"),
    ("validation image smaller than val_patch_size", "prepare",
     lambda w: w.args("prepare", w.edited("prepare", val_patch_size=96)),
     r"no patches of 96x96 from 1 image\(s\) for \S*val.h5: too small \['train/good"),
    ("patch file missing", "pretrain", lambda w: w.args("pretrain", train=w.root / "missing.h5"),
     r"no patch file at \S*missing.h5"),
    ("patch file not HDF5", "pretrain", lambda w: w.args("pretrain", val=write_bytes(w.root / "n.h5", b"text")),
     r"n.h5: not an HDF5 patch file"),
    ("patch file of another schema", "pretrain", lambda w: w.args("pretrain", train=wrong_schema(w)),
     r"other.h5: patch schema version None, expected 1; re-run prepare"),
    ("patch file of another scale", "train_gan", lambda w: w.args("train_gan", train=w.root / "x2.h5"),
     r"x2.h5: patches were made for scale 2, this run uses scale 4"),
    ("checkpoint missing", "train_gan", lambda w: w.args("train_gan", init=w.root / "missing.pt"),
     r"checkpoint \S*missing.pt does not exist"),
    ("checkpoint of another scale", "train_gan", lambda w: w.args("train_gan", init=tiny_generator(w.root / "x2.pt", 2)),
     r"checkpoint \S*x2.pt is a x2 model, expected x4"),
    ("checkpoint weights of another architecture", "evaluate", lambda w: w.args("evaluate", model=f"m={wrong_weights(w)}"),
     r"checkpoint \S*mixed.pt: its weights do not fit the architecture it names: weight keys differ"),
    ("checkpoints of two architectures", "interpolate",
     lambda w: w.args("interpolate", gan=tiny_generator(w.root / "srresnet.pt", arch="srresnet")),
     r"cannot interpolate \S*psnr.pt \(PSNR\) with \S*srresnet.pt \(GAN\): arch differs: 'edsr' vs 'srresnet'"),
    ("checkpoint not a checkpoint", "evaluate", lambda w: w.args("evaluate", model=f"m={not_a_checkpoint(w)}"),
     r"checkpoint \S*notes.pt could not be read safely"),
    ("checkpoint truncated", "train_gan", lambda w: w.args("train_gan", init=truncated_checkpoint(w)),
     r"checkpoint \S*half.pt could not be read safely"),
    ("checkpoint of another scale (evaluate)", "evaluate",
     lambda w: w.args("evaluate", model=f"m={tiny_generator(w.root / 'x3.pt', 3)}"), r"x3.pt is a x3 model, expected x4"),
    ("benchmark dataset missing", "evaluate", lambda w: w.args("evaluate", w.edited("evaluate", datasets=["Nope"])),
     r"image folder \S*Nope does not exist"),
]


@pytest.mark.filterwarnings("ignore:skipped .* image")  # bad images are also listed in a warning before the error
@pytest.mark.parametrize("stage, make_args, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_stops_the_stage_with_one_line_and_no_output(ws: Workspace, monkeypatch, capsys, stage: str,
                                                                make_args, message: str):
    code = run_script(monkeypatch, stage, *make_args(ws))
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith(f"{stage}: error: ")]
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    assert err.rstrip().endswith(errors[0])  # the last thing printed
    assert re.search(message, errors[0]), errors[0]
    assert sorted(ws.out.rglob("*")) == []  # no output and no temporary file
