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
from srcore.config import load_params, merged
from srcore.models import build_generator
from srcore.patches import split_validation, write_images

ROOT = Path(__file__).resolve().parents[1]
PARAMS = merged(load_params(ROOT / "params.yaml"), {
    "common": {"seed": 0, "scale": 4},
    "runtime": {"device": "cpu", "precision": "fp32", "channels_last": False, "kernels": "torch", "threads": 0},
    "prepare": {"val_images": 1, "val_patch_size": 48},
    "pretrain": {"generator_args": {"num_feat": 4, "num_block": 1}, "steps": 2, "batch_size": 2, "patch_size": 24},
    "gan": {"steps": 2, "batch_size": 2, "patch_size": 24, "discriminator_args": {"num_feat": 4, "num_dense": 8}},
    "interpolate": {"alphas": [0.5]},
    "evaluate": {"datasets": ["Tiny"], "niqe": False, "crop_size": 16},
})


def run_script(monkeypatch, stage: str, *args: object) -> int:
    """Run stages/<stage>.py as `python stages/<stage>.py args...` does, in this process; its exit status.
    The process-wide torch state a stage sets (grad mode, threads, RNG) is restored for the other tests."""
    monkeypatch.setattr(sys, "argv", [f"stages/{stage}.py", *map(str, args)])
    grad, threads = torch.is_grad_enabled(), torch.get_num_threads()
    try:
        with torch.random.fork_rng(devices=[]):
            runpy.run_path(str(ROOT / "stages" / f"{stage}.py"), run_name="__main__")
    except SystemExit as exit_:
        return exit_.code
    finally:
        torch.set_grad_enabled(grad)
        torch.set_num_threads(threads)
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
        write_images(images, root / "train.h5", scale=4, seed=0)  # three 48x48 images: also tiles of one size
        write_images(images, root / "x2.h5", scale=2, seed=0)
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
                         "runs": self.out / "runs", "out": self.out / "psnr.pt", "live": self.out / "live"},
            "train_gan": {"init": self.psnr, "train": self.root / "train.h5", "val": self.root / "train.h5",
                          "runs": self.out / "runs", "out": self.out / "gan.pt", "live": self.out / "live"},
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
     r"bad.yaml:2:1: not valid YAML: expected the node content"),
    ("params: missing group", "prepare", lambda w: w.args("prepare", w.without("prepare")),
     r"params: no group 'prepare'"),
    ("params: unknown key", "prepare", lambda w: w.args("prepare", w.edited("prepare", patchsize=24)),
     r"prepare: unknown key\(s\) patchsize; valid: val_images, val_patch_size"),
    ("params: wrong type", "prepare", lambda w: w.args("prepare", w.edited("prepare", val_patch_size="48")),
     r"prepare.val_patch_size: expected int, got '48'"),
    ("params: scale 5", "prepare", lambda w: w.args("prepare", w.edited("common", scale=5)),
     r"common.scale: expected one of 2, 3, 4, got 5"),
    ("params: patch size not divisible by scale", "pretrain",
     lambda w: w.args("pretrain", w.edited("pretrain", patch_size=26)),
     r"pretrain.patch_size=26 is not divisible by common.scale=4; expected a multiple of 4"),
    ("params: GAN patch size not divisible by scale", "train_gan",
     lambda w: w.args("train_gan", w.edited("gan", patch_size=30)), r"gan.patch_size=30 is not divisible"),
    ("params: val patch size not divisible by scale", "prepare",
     lambda w: w.args("prepare", w.edited("prepare", val_patch_size=50)), r"prepare.val_patch_size=50 is not divisible"),
    ("params: negative patch size", "train_gan", lambda w: w.args("train_gan", w.edited("gan", patch_size=-24)),
     r"gan.patch_size must be > 0, got -24"),
    ("params: unknown data source", "pretrain", lambda w: w.args("pretrain", w.edited("runtime", data_source="disk")),
     r"runtime.data_source: expected one of 'auto', 'memory', 'lazy', got 'disk'"),
    ("params: no loader worker", "pretrain", lambda w: w.args("pretrain", w.edited("runtime", loader_workers=0)),
     r"runtime.loader_workers must be > 0, got 0"),
    ("params: crops larger than every image", "pretrain", lambda w: w.args("pretrain", w.edited("pretrain", patch_size=52)),
     r"train.h5: patch_size=52 at scale 4: no image holds a crop of 13 LR pixels: the largest LR image is \(12, 12\)"),
    ("params: negative learning rate", "pretrain", lambda w: w.args("pretrain", w.edited("pretrain", lr=-1e-4)),
     r"pretrain.lr must be > 0, got -0.0001"),
    ("params: zero GAN learning rate", "train_gan", lambda w: w.args("train_gan", w.edited("gan", lr_d=0)),
     r"gan.lr_d must be > 0, got 0"),
    ("params: negative loss weight", "train_gan",
     lambda w: w.args("train_gan", w.edited("gan", adversarial_weight=-1)), r"gan.adversarial_weight must be >= 0"),
    ("params: unknown generator argument", "pretrain",
     lambda w: w.args("pretrain", w.edited("pretrain", generator_args={"nfeat": 4})),
     r"pretrain.generator_args: unknown key\(s\) nfeat for EDSR; valid: in_ch, out_ch, num_feat"),
    ("params: unknown generator", "pretrain", lambda w: w.args("pretrain", w.edited("pretrain", generator="fsrcnn")),
     r"pretrain.generator: expected one of 'srresnet', 'edsr', 'rrdb', 'srcnn', 'vdsr', 'mdsr', got 'fsrcnn'"),
    ("params: alpha above 1", "interpolate", lambda w: w.args("interpolate", w.edited("interpolate", alphas=[0.5, 1.5])),
     r"interpolate.alphas: .*must be in \[0, 1\].*got 1.5"),
    ("params: alpha below 0", "interpolate", lambda w: w.args("interpolate", w.edited("interpolate", alphas=[-0.2])),
     r"interpolate.alphas: .*got -0.2"),
    ("params: missing key", "pretrain", lambda w: w.args("pretrain", w.edited("pretrain", steps=None)),
     r"pretrain: missing key\(s\) steps"),
    ("params: unknown evaluate key", "evaluate", lambda w: w.args("evaluate", w.edited("evaluate", dataset=["Set5"])),
     r"evaluate: unknown key\(s\) dataset; valid: datasets"),
    ("training folder missing", "prepare", lambda w: w.args("prepare", train=w.root / "nowhere"),
     r"image folder \S*nowhere does not exist"),
    ("training folder without images", "prepare",
     lambda w: w.args("prepare", train=folder_of(w, {"notes.txt": lambda p: p.write_text("hi")})),
     r"no images in \S*bad or its subfolders: expected files ending in .png"),
    ("training folder of only bad files", "prepare", lambda w: w.args("prepare", train=folder_of(w, {
        "corrupt.png": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n garbage"), "empty.png": lambda p: p.touch(),
        "small.png": lambda p: rgb_png(p, size=3)})),
     r"no images of at least 4x4 pixels among 2 for \S*train.h5"),
    ("validation image smaller than val_patch_size", "prepare",
     lambda w: w.args("prepare", w.edited("prepare", val_patch_size=96)),
     r"no images of at least 96x96 pixels among 1 for \S*val.h5: too small \['train/good"),
    ("image file missing", "pretrain", lambda w: w.args("pretrain", train=w.root / "missing.h5"),
     r"no image file at \S*missing.h5"),
    ("image file not HDF5", "pretrain", lambda w: w.args("pretrain", val=write_bytes(w.root / "n.h5", b"text")),
     r"n.h5: not an HDF5 image file"),
    ("image file of another schema", "pretrain", lambda w: w.args("pretrain", train=wrong_schema(w)),
     r"other.h5: image file schema version None, expected 3; re-run prepare"),
    ("image file of another scale", "train_gan", lambda w: w.args("train_gan", train=w.root / "x2.h5"),
     r"x2.h5: has no LR images for scale 4 \(made for scale 2;"),
    ("checkpoint missing", "train_gan", lambda w: w.args("train_gan", init=w.root / "missing.pt"),
     r"weights \S*missing.pt does not exist"),
    ("checkpoint of another scale", "train_gan", lambda w: w.args("train_gan", init=tiny_generator(w.root / "x2.pt", 2)),
     r"\S*x2.pt is a x2 model, expected x4"),
    ("checkpoint weights of another architecture", "evaluate", lambda w: w.args("evaluate", model=f"m={wrong_weights(w)}"),
     r"\S*mixed.pt \(srcore weights\): its weights do not fit the architecture it names: weight keys differ"),
    ("checkpoints of two architectures", "interpolate",
     lambda w: w.args("interpolate", gan=tiny_generator(w.root / "srresnet.pt", arch="srresnet")),
     r"cannot interpolate \S*psnr.pt \(PSNR\) with \S*srresnet.pt \(GAN\): arch differs: 'edsr' vs 'srresnet'"),
    ("checkpoint not a checkpoint", "evaluate", lambda w: w.args("evaluate", model=f"m={not_a_checkpoint(w)}"),
     r"weights \S*notes.pt could not be read safely: not a complete torch checkpoint file \(IndexError"),
    ("checkpoint truncated", "train_gan", lambda w: w.args("train_gan", init=truncated_checkpoint(w)),
     r"weights \S*half.pt could not be read safely: not a complete torch checkpoint file \(RuntimeError: "
     r"PytorchStreamReader failed reading zip archive: failed finding central directory\)$"),
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


# ---- cases where the run goes on ----

def seed_holding_out(images: list[Path], name: str) -> int:
    """A seed whose validation hold-out (one image) is `name`, so the test knows which file goes where."""
    return next(seed for seed in range(1000) if split_validation(images, 1, seed)[1][0].name == name)


def sources_and_items(path: Path) -> dict[str, list[np.ndarray]]:
    """{folder/file: its HR items (3, H, W)}, in the order the file holds them (every image gives as many)."""
    with h5py.File(path, "r") as f:
        sources, hr = [str(s) for s in f.attrs["sources"]], [f["hr"][key][:] for key in sorted(f["hr"])]
    per_image = len(hr) // len(sources)
    return {s: hr[i * per_image:(i + 1) * per_image] for i, s in enumerate(sources)}


def planes(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (3, H, W)."""
    return rgb.transpose(2, 0, 1)


BAD_FILES: dict[str, Callable[[Path], object]] = {
    "corrupt.png": lambda p: p.write_bytes(rgb_png(p).read_bytes()[:60] + b"\0" * 200),
    "truncated.png": lambda p: p.write_bytes(rgb_png(p).read_bytes()[:3000]),
    "empty.png": lambda p: p.touch(),
    "notes.jpg": lambda p: p.write_text("not an image\n"),
    "one_by_one.png": lambda p: rgb_png(p, size=1),
    "small.png": lambda p: rgb_png(p, size=20),
    "bomb.png": bomb_png,
}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns, srcore refuses
def test_bad_images_among_good_ones_are_skipped_by_name_and_the_run_goes_on(ws: Workspace, monkeypatch, capsys):
    for name, make in BAD_FILES.items():
        make(ws.train / name)
    seed = seed_holding_out(sorted(p for p in ws.train.iterdir()), "good2.png")
    params = ws.params({**PARAMS, "common": {"seed": seed, "scale": 4}}, "seeded.yaml")
    with pytest.warns(UserWarning) as warned:
        assert run_script(monkeypatch, "prepare", *ws.args("prepare", params)) == 0
    message = " ".join(str(w.message) for w in warned)
    assert "smaller than 4x4: train/one_by_one.png |" in message
    for name in ("corrupt.png", "truncated.png", "empty.png", "notes.jpg"):
        assert f"train/{name} (" in message and str(ws.train / name) in message, name
    assert "bomb.png: 10000x10000 = 100000000 pixels is more than MAX_PIXELS" in message  # refused, not decoded
    train = sources_and_items(ws.out / "train.h5")
    assert list(train) == ["train/good0.png", "train/good1.png", "train/small.png"]  # small: whole, still an image
    for name in ("good0.png", "good1.png", "small.png"):
        (item,) = train[f"train/{name}"]
        assert np.array_equal(item, planes(np.asarray(Image.open(ws.train / name))))
    assert list(sources_and_items(ws.out / "val.h5")) == ["train/good2.png"]
    assert "train.h5: 3 images (6 skipped)" in capsys.readouterr().out


def pixel_mode_images(folder: Path) -> dict[str, np.ndarray]:
    """One 48x48 image per pixel mode in `folder`; {name: the (48, 48, 3) uint8 RGB it holds}."""
    rng = np.random.default_rng(7)
    u8 = rng.integers(0, 256, (48, 48, 4), dtype=np.uint8)
    u16 = rng.integers(0, 65536, (48, 48, 3), dtype=np.uint16)
    Image.fromarray(u8[..., 0]).save(folder / "grey.png")
    Image.fromarray(u8).save(folder / "rgba.png")  # alpha is dropped, colour is not premultiplied
    Image.fromarray(u16[..., 0]).save(folder / "grey16.png")  # mode I;16
    with open(folder / "rgb16.png", "wb") as file:
        png.Writer(48, 48, greyscale=False, bitdepth=16).write(file, u16.reshape(48, 48 * 3))
    palette = Image.fromarray(u8[..., :3]).quantize(16)
    palette.save(folder / "palette.png")
    cmyk = np.concatenate([u8[..., :3], np.zeros((48, 48, 1), np.uint8)], axis=-1)  # K = 0: RGB = 255 - CMY
    Image.fromarray(cmyk, "CMYK").save(folder / "cmyk.tif")
    to8 = lambda v: np.round(v / 257).astype(np.uint8)  # noqa: E731 - v / 65535 * 255, rounded
    return {"grey.png": np.repeat(u8[..., :1], 3, axis=-1), "rgba.png": u8[..., :3],
            "grey16.png": np.repeat(to8(u16[..., :1]), 3, axis=-1), "rgb16.png": to8(u16),
            "palette.png": np.asarray(palette.convert("RGB")), "cmyk.tif": 255 - u8[..., :3]}


def test_every_pixel_mode_is_read_as_the_rgb_it_holds(ws: Workspace, monkeypatch):
    folder = ws.root / "modes"
    folder.mkdir()
    expected = pixel_mode_images(folder)
    assert Image.open(folder / "grey16.png").mode == "I;16" and Image.open(folder / "palette.png").mode == "P"
    seed = seed_holding_out(sorted(folder.iterdir()), "cmyk.tif")
    params = ws.params({**PARAMS, "common": {"seed": seed, "scale": 4}}, "seeded.yaml")
    assert run_script(monkeypatch, "prepare", *ws.args("prepare", params, train=folder)) == 0
    train, val = sources_and_items(ws.out / "train.h5"), sources_and_items(ws.out / "val.h5")
    assert sorted(train) == sorted(f"modes/{n}" for n in expected if n != "cmyk.tif")
    for name, rgb in expected.items():  # training images whole; the validation image is one 48x48 tile
        (item,) = (val if name == "cmyk.tif" else train)[f"modes/{name}"]
        assert np.array_equal(item, planes(rgb)), name


@pytest.mark.filterwarnings("ignore:skipped .* image")
def test_a_failed_prepare_leaves_the_previous_pair_of_files_untouched(ws: Workspace, monkeypatch, capsys):
    assert run_script(monkeypatch, "prepare", *ws.args("prepare")) == 0
    before = {p.name: p.read_bytes() for p in ws.out.iterdir()}
    assert sorted(before) == ["train.h5", "val.h5"]
    # train.h5 is written in full, then val.h5 has no tile: neither file may change.
    assert run_script(monkeypatch, "prepare", *ws.args("prepare", ws.edited("prepare", val_patch_size=96))) == 2
    assert "val.h5" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in ws.out.iterdir()} == before


# ---- untrusted files ----

class Payload:
    """Unpickling this calls Path.touch(marker): code a checkpoint must never get to run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def malicious_checkpoints(folder: Path, marker: Path) -> list[Path]:
    """A torch.save zip and two bare pickles, each a plausible checkpoint dict carrying the payload."""
    state = {"arch": "edsr", "arch_args": {"scale": 4}, "model": {"w": Payload(marker)}}
    torch.save(state, folder / "evil_zip.pt")
    import pickle
    (folder / "evil_pickle2.pt").write_bytes(pickle.dumps(state, protocol=2))
    (folder / "evil_pickle5.pt").write_bytes(pickle.dumps(state, protocol=5))
    return [folder / "evil_zip.pt", folder / "evil_pickle2.pt", folder / "evil_pickle5.pt"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_checkpoint_carrying_a_pickled_payload_is_refused_without_running_it(ws: Workspace, monkeypatch, capsys):
    import pickle

    from srcore.checkpoint import load_checkpoint
    from srcore.cli import main as srcore_main
    from srcore.weights import load_generator

    marker = ws.root / "PWNED"
    evil = malicious_checkpoints(ws.root, marker)
    pickle.loads(pickle.dumps(Payload(ws.root / "control")))  # the payload is live: plain unpickling runs it
    assert (ws.root / "control").exists()
    for path in evil:
        for load, what in ((load_checkpoint, "checkpoint"), (load_generator, "weights")):
            with pytest.raises(ValueError, match=f"{what} {re.escape(str(path))} could not be read safely: "
                                                 r"torch.load\(weights_only=True\) refused it \(Unsupported "
                                                 r"[^)]+\): it holds pickled code .*nothing in it was run$"):
                load(path)
        assert run_script(monkeypatch, "evaluate", *ws.args("evaluate", model=f"m={path}")) == 2
        assert run_script(monkeypatch, "train_gan", *ws.args("train_gan", init=path)) == 2
        assert srcore_main(["eval", "--model", str(path), "--data", str(ws.root / "bench" / "Tiny"), "--scale", "4"]) == 2
        err = capsys.readouterr().err
        for prefix in ("evaluate: error: weights", "train_gan: error: weights", "srcore eval: error: weights"):
            assert f"{prefix} {path} could not be read safely" in err, prefix
    assert not marker.exists()
    assert sorted(ws.out.rglob("*")) == []
