"""Input-pipeline benchmarks (`make bench-data`): batches per second against what a training step consumes,
`prepare` throughput with 1 and 2 worker processes, and the storage layouts (chunk sides, sub-images).

    python -m srcore.bench.data --params params.yaml --train data/prepared/train.h5 \
        --images data/raw/train/T91 data/raw/train/BSDS200 --out metrics/bench_data.json [--quick]

The batch sources give the same batches (srcore.data.TrainingImages): the pipeline's in-memory images cropped
in the training process, and the lazy source whose DataLoader workers read only the crops from the HDF5 file.
With 2 cores, workers compete with the training threads, so the comparison that counts is steps/s of training
fed by each source, measured interleaved.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from srcore import memory
from srcore.bench.common import MODES, Mode, environment, format_table, interleaved, summary, write_json
from srcore.bench.train import CONFIGS, Config, make_recipe
from srcore.config import load_params
from srcore.data import open_training_images
from srcore.imageio import list_images
from srcore.imagefile import check_image_file
from srcore.patches import write_images
from srcore.runtime import to_device


def bench_loading(path: Path, steps: int, repeats: int, params: dict, workers: tuple[int, ...] = (1, 2),
                  config: Config = CONFIGS["edsr-default"], mode: Mode = MODES["bf16+cl+keep"]) -> list[dict]:
    """patches/s of each source alone, and steps/s of `config`'s training step fed by each source
    (`steps` steps per timing; the image file must be x4; `params`: params.yaml, for the recipe)."""
    patch, total = 4 * config.lr_size, steps * repeats * 4 + 8
    memory_data = open_training_images(path, 4, patch, seed=0, source="memory", workers=0)
    recipe, runtime = make_recipe(config, mode, params)

    def update(lq: torch.Tensor, hr: torch.Tensor) -> None:
        recipe.step(recipe.state, to_device(lq, runtime), to_device(hr, runtime))
    memory.keep_freed_memory(True)
    # The in-memory source alone before any worker exists: once they do, refilling their queues competes for the cores.
    batch_ids = iter(range(total))
    alone = interleaved({"in-memory": lambda: [memory_data.batch(next(batch_ids), config.batch, True)
                                               for _ in range(steps)]}, repeats)
    iters = {w: open_training_images(path, 4, patch, seed=0, source="lazy", workers=w).batches(0, total, config.batch, True)
             for w in workers}
    counter = iter(range(total))
    sources = {"in-memory": lambda: memory_data.batch(next(counter), config.batch, True),
               **{f"lazy, {w} worker(s)": (lambda it=it: next(it)) for w, it in iters.items()}}
    for fetch in sources.values():  # start the workers, fill their prefetch queues
        fetch()
    alone.update(interleaved({name: lambda f=fetch: [f() for _ in range(steps)]
                              for name, fetch in sources.items() if name != "in-memory"}, repeats))
    lq, hr = memory_data.batch(0, config.batch, True)
    sources_and_none = {**sources, "training only (no data)": lambda: (lq, hr)}
    trained = interleaved({name: lambda f=fetch: [update(*f()) for _ in range(steps)]
                           for name, fetch in sources_and_none.items()}, repeats)
    for it in iters.values():
        it.close()  # stop the workers
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
    """images/s of write_images (whole training images, x4) per worker count, interleaved."""
    with tempfile.TemporaryDirectory() as tmp:
        def run(w: int) -> None:
            write_images(images, Path(tmp) / f"w{w}.h5", scale=4, seed=0, workers=w)
        times = interleaved({w: (lambda w=w: run(w)) for w in workers}, repeats)
        same = len({(Path(tmp) / f"w{w}.h5").read_bytes() for w in workers}) == 1
    base = summary(times[workers[0]])["median_ms"]
    return [{"workers": w, "images": len(images), **summary(t), "images_per_s": round(len(images) / summary(t)["median_ms"] * 1e3, 2),
             "speedup": round(base / summary(t)["median_ms"], 2), "same_bytes": same} for w, t in times.items()]


# (name, tile, chunk): whole images with three chunk sides, and BasicSR-style sub-images (stride: half the side)
LAYOUTS = (("whole, chunk 32", 0, 32), ("whole, chunk 64", 0, 64), ("whole, chunk 128", 0, 128),
           ("sub-images 240 (stride 120), chunk 64", 240, 64))


def bench_layouts(images: list[Path], batches: int, repeats: int, batch: int = 16, patch: int = 96) -> list[dict]:
    """Per storage layout: file size and random-crop batches/s read lazily in this process (no workers)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = {}
        for name, tile, chunk in LAYOUTS:
            out = Path(tmp) / f"{tile}_{chunk}.h5"
            write_images(images, out, scale=4, seed=0, tile=tile, stride=tile // 2, chunk=chunk, workers=2)
            data = open_training_images(out, 4, patch, seed=0, source="lazy", workers=0)
            steps = iter(range(10**9))
            sources[name] = (lambda d=data, s=steps: [d.batch(next(s), batch, True) for _ in range(batches)])
            rows.append({"layout": name, "items": len(data), "hr_mpixels": round(check_image_file(out, 4).sizes.prod(1).sum() / 1e6, 2),
                         "file_mb": round(out.stat().st_size / 2**20, 1)})
        times = interleaved(sources, repeats)
    for row in rows:
        row["crops_per_s"] = round(batch * batches / summary(times[row["layout"]])["median_ms"] * 1e3, 1)
    return rows


LOAD_COLUMNS = [("source", "batch source"), ("batch", "B"), ("patches_per_s_alone", "patches/s alone"),
                ("steps_per_s_training", "train steps/s"), ("patches_per_s_consumed", "patches/s consumed")]
LAYOUT_COLUMNS = [("layout", "layout"), ("items", "items"), ("hr_mpixels", "HR Mpixels stored"), ("file_mb", "file MB"),
                  ("crops_per_s", "96-px crops/s, lazy")]
PREPARE_COLUMNS = [("workers", "workers"), ("images", "images"), ("median_ms", "median ms"), ("best_ms", "best ms"),
                   ("images_per_s", "images/s"), ("speedup", "x 1 worker"), ("same_bytes", "same bytes")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, required=True, help="params.yaml: the recipe's settings")
    parser.add_argument("--train", type=Path, required=True, help="train.h5 from the prepare stage")
    parser.add_argument("--images", type=Path, nargs="+", required=True, help="folders of raw training images")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="fewer steps and a 30-image prepare subset")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images = [path for folder in args.images for path in list_images(folder)]
    start = environment()
    loading = bench_loading(args.train, steps=4 if args.quick else 8, repeats=3 if args.quick else 5,
                            params=load_params(args.params))
    prepare = bench_prepare(images[:30] if args.quick else images, repeats=1 if args.quick else 2)
    layouts = bench_layouts(images[:30] if args.quick else images, batches=5 if args.quick else 20, repeats=3)
    write_json(args.out, {"loading": loading, "prepare": prepare, "layouts": layouts}, start)
    print(format_table(loading, LOAD_COLUMNS))
    print(format_table(prepare, PREPARE_COLUMNS))
    print(format_table(layouts, LAYOUT_COLUMNS))


if __name__ == "__main__":
    main()
