"""Input-pipeline benchmarks (`make bench-data`): batches per second against what a training step consumes,
and `prepare` throughput with 1 and 2 worker processes.

    python -m srcore.bench.data --params params.yaml --train data/prepared/train.h5 \
        --images data/raw/train/T91 data/raw/train/BSDS200 --out metrics/bench_data.json [--quick]

Two batch sources give the same batches (`PatchBank.batch`): the pipeline's in-memory bank indexed in the
training process, and a DataLoader whose workers read the HDF5 file lazily (each opens it itself). With 2
cores, workers compete with the training threads, so the comparison that counts is steps/s of training
fed by each source, measured interleaved.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from srcore import memory
from srcore.bench.common import MODES, Mode, environment, format_table, interleaved, summary, write_json
from srcore.bench.train import CONFIGS, Config, make_recipe
from srcore.config import load_params
from srcore.data import PatchBank
from srcore.imageio import list_images
from srcore.patches import write_patches
from srcore.runtime import to_device


class H5Rows:
    """Rows of one HDF5 dataset read on indexing, the file opened lazily in whichever process reads."""

    def __init__(self, path: Path, name: str):
        self.path, self.name = Path(path), name
        with h5py.File(path, "r") as f:
            self.shape = f[name].shape
        self._file, self._pid = None, None

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        """index: (B,) int64 -> (B, *row) uint8, in the order of `index` (repeats allowed)."""
        if self._pid != os.getpid():  # a forked worker must not share the parent's HDF5 handle
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        wanted = index.numpy()
        rows, where = np.unique(wanted, return_inverse=True)  # h5py reads increasing, distinct indices
        return torch.from_numpy(self._file[self.name][rows][where])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_pid": None}


class Batches(Dataset):
    """Item k = bank.batch(k, size, augment): a DataLoader over it yields the training loop's batches."""

    def __init__(self, bank: PatchBank, steps: int, size: int, augment: bool = True):
        self.bank, self.steps, self.size, self.augment = bank, steps, size, augment

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.bank.batch(step, self.size, self.augment)


def lazy_bank(path: Path, seed: int = 0) -> PatchBank:
    """A PatchBank over the HDF5 file itself: same batches as PatchBank.from_h5, nothing read up front."""
    return PatchBank(H5Rows(path, "lq"), H5Rows(path, "hr"), seed)


def loader(path: Path, workers: int, steps: int, size: int) -> DataLoader:
    return DataLoader(Batches(lazy_bank(path), steps, size), batch_size=None, num_workers=workers,
                      prefetch_factor=4, persistent_workers=True)


def bench_loading(path: Path, steps: int, repeats: int, params: dict, workers: tuple[int, ...] = (1, 2),
                  config: Config = CONFIGS["edsr-default"], mode: Mode = MODES["bf16+cl+keep"]) -> list[dict]:
    """patches/s of each source alone, and steps/s of `config`'s training step fed by each source
    (`steps` steps per timing; the patch file must be x4; `params`: params.yaml, for the recipe)."""
    bank = PatchBank.from_h5(path, seed=0, scale=4)
    total = steps * repeats * 4 + 8
    recipe, runtime = make_recipe(config, mode, params)

    def update(lq: torch.Tensor, hr: torch.Tensor) -> None:
        recipe.step(recipe.state, to_device(lq, runtime), to_device(hr, runtime))
    memory.keep_freed_memory(True)
    # The bank alone before any worker exists: once they do, refilling their queues competes for the cores.
    batch_ids = iter(range(total))
    alone = interleaved({"in-memory bank": lambda: [bank.batch(next(batch_ids), config.batch, True)
                                                    for _ in range(steps)]}, repeats)
    iters = {w: iter(loader(path, w, total, config.batch)) for w in workers}
    counter = iter(range(total))
    sources = {"in-memory bank": lambda: bank.batch(next(counter), config.batch, True),
               **{f"DataLoader, {w} worker(s)": (lambda it=it: next(it)) for w, it in iters.items()}}
    for fetch in sources.values():  # start the workers, fill their prefetch queues
        fetch()
    alone.update(interleaved({name: lambda f=fetch: [f() for _ in range(steps)]
                              for name, fetch in sources.items() if name != "in-memory bank"}, repeats))
    lq, hr = bank.batch(0, config.batch, True)
    sources_and_none = {**sources, "training only (no data)": lambda: (lq, hr)}
    trained = interleaved({name: lambda f=fetch: [update(*f()) for _ in range(steps)]
                           for name, fetch in sources_and_none.items()}, repeats)
    rows = []
    for name in list(sources) + ["training only (no data)"]:
        row = {"source": name, "batch": config.batch}
        if name in alone:
            row["patches_per_s_alone"] = round(config.batch * steps / summary(alone[name])["median_ms"] * 1e3, 1)
        row["steps_per_s_training"] = round(steps / summary(trained[name])["median_ms"] * 1e3, 3)
        row["patches_per_s_consumed"] = round(config.batch * row["steps_per_s_training"], 1)
        rows.append(row)
    memory.keep_freed_memory(False)
    return rows


def bench_prepare(images: list[Path], repeats: int, workers: tuple[int, ...] = (1, 2)) -> list[dict]:
    """images/s of write_patches (the default train geometry) per worker count, interleaved."""
    with tempfile.TemporaryDirectory() as tmp:
        def run(w: int) -> None:
            write_patches(images, Path(tmp) / f"w{w}.h5", scale=4, patch_size=96, stride=48, seed=0, workers=w)
        times = interleaved({w: (lambda w=w: run(w)) for w in workers}, repeats)
        same = len({(Path(tmp) / f"w{w}.h5").read_bytes() for w in workers}) == 1
    base = summary(times[workers[0]])["median_ms"]
    return [{"workers": w, "images": len(images), **summary(t), "images_per_s": round(len(images) / summary(t)["median_ms"] * 1e3, 2),
             "speedup": round(base / summary(t)["median_ms"], 2), "same_bytes": same} for w, t in times.items()]


LOAD_COLUMNS = [("source", "batch source"), ("batch", "B"), ("patches_per_s_alone", "patches/s alone"),
                ("steps_per_s_training", "train steps/s"), ("patches_per_s_consumed", "patches/s consumed")]
PREPARE_COLUMNS = [("workers", "workers"), ("images", "images"), ("median_ms", "median ms"), ("best_ms", "best ms"),
                   ("images_per_s", "images/s"), ("speedup", "x 1 worker"), ("same_bytes", "same bytes")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, required=True, help="params.yaml: the recipe's settings")
    parser.add_argument("--train", type=Path, required=True, help="train.h5 from the prepare stage")
    parser.add_argument("--images", type=Path, nargs="+", required=True, help="folders of raw training images")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="fewer steps and a 30-image prepare subset")
    args = parser.parse_args()
    images = [path for folder in args.images for path in list_images(folder)]
    start = environment()
    loading = bench_loading(args.train, steps=4 if args.quick else 8, repeats=3 if args.quick else 5,
                            params=load_params(args.params))
    prepare = bench_prepare(images[:30] if args.quick else images, repeats=1 if args.quick else 2)
    write_json(args.out, {"loading": loading, "prepare": prepare}, start)
    print(format_table(loading, LOAD_COLUMNS))
    print(format_table(prepare, PREPARE_COLUMNS))


if __name__ == "__main__":
    main()
