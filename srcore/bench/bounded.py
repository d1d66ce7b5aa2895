"""Training from an image file larger than memory (`make bench-bounded`): peak RSS under a cap, steps/s.

    python -m srcore.bench.bounded --params params.yaml --train data/prepared/train.h5 \
        --out metrics/bench_bounded.json [--cap-mb 2048] [--factor 4] [--steps 40] [--work DIR] [--quick]

Builds an image file at least `factor` x the cap by repeating the items of --train (the prepare stage's file;
the big file is not committed and is removed at the end), then trains the default pretrain step (params.yaml)
in child processes whose address space is capped (RLIMIT_AS, inherited by the loader workers they fork):
- the in-memory and the lazy source on --train, which fits: the speed the lazy source costs;
- `auto` on the big file: it must pick the lazy source, train, and stay under the cap;
- the in-memory source on the big file: it must fail, which shows the cap binds.
Memory is the sum over the child and its loader workers of each process's peak RSS (VmHWM, read from /proc
while they run): an upper bound on their joint peak, counting pages they share once per process.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import h5py
import torch

from srcore.bench.common import MODES, environment, format_table, write_json
from srcore.bench.train import Config, make_recipe
from srcore.config import load_params, params_group
from srcore.data import open_training_images
from srcore.imagefile import LIBVER, SCHEMA_VERSION, add_to_digest, check_image_file, hr_key, lq_key, write_item
from srcore.runtime import to_device
from srcore.settings import PretrainSettings, Runtime

SCALE = 4


def repeat_items(source: Path, out: Path, copies: int) -> int:
    """An image file holding the items of `source` `copies` times over (a valid prepare file, digest included);
    returns its size in bytes."""
    digest, sizes = hashlib.sha256(), []
    with h5py.File(source, "r") as src, h5py.File(out, "w", libver=LIBVER) as f:
        count = len(src["sizes"])
        for copy in range(copies):
            for i in range(count):
                hr, lq = src[hr_key(i)][:], src[lq_key(i, SCALE)][:]
                write_item(f, len(sizes), hr, lq, SCALE)
                add_to_digest(digest, hr, lq)
                sizes.append(hr.shape[1:])
        f.create_dataset("sizes", data=sizes)
        f.attrs.update({"schema_version": SCHEMA_VERSION, "scale": SCALE, "tile": 0, "stride": SCALE, "seed": 0,
                        "items": len(sizes), "digest": digest.hexdigest()})
    return out.stat().st_size


def train_child(path: Path, source: str, steps: int, params: dict) -> dict:
    """In the capped child: train `steps` steps (after 3 warm-up steps) from `path`; what it measured."""
    settings = params_group(params, PretrainSettings, "pretrain")
    workers = params_group(params, Runtime, "runtime").loader_workers
    config = Config("edsr", dict(settings.generator_args), batch=settings.batch_size, lr_size=settings.patch_size // SCALE)
    recipe, runtime = make_recipe(config, MODES["bf16+cl+keep"], params)
    data = open_training_images(path, SCALE, settings.patch_size, seed=0, source=source, workers=workers)
    start = None
    for k, (lq, hr) in enumerate(data.batches(0, steps + 3, settings.batch_size, settings.augment)):
        if k == 3:
            start = time.perf_counter()
        recipe.step(recipe.state, to_device(lq, runtime), to_device(hr, runtime))
    return {"chosen": data.source, "steps_per_s": round(steps / (time.perf_counter() - start), 3),
            "main_peak_mb": round(status_kb("self", "VmHWM") / 1024, 1)}


def status_kb(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def tree(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):  # the process ended while we looked
            continue
    found, todo = [pid], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def child_command(path: Path, source: str, steps: int, params: Path, threads: int = 0) -> list[str]:
    """This module run as the training child (`train_child`)."""
    return [sys.executable, "-m", "srcore.bench.bounded", "child", str(path), source, str(steps), str(params),
            str(threads)]


def run_capped(command: list[str], cap_bytes: int, interval: float = 0.1) -> tuple[dict | None, float, str]:
    """Run `command` under RLIMIT_AS = cap; (the JSON of its last output line, or None when it failed; the sum
    of its processes' peak RSS in MB; the last line of its stderr)."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))
    child = subprocess.Popen(command, preexec_fn=cap, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}
    while child.poll() is None:
        for pid in tree(child.pid):
            try:
                peaks[pid] = max(peaks.get(pid, 0), status_kb(pid, "VmHWM"))
            except OSError:
                continue
        time.sleep(interval)
    out, err = child.communicate()
    result = json.loads(out.splitlines()[-1]) if child.returncode == 0 else None
    return result, round(sum(peaks.values()) / 1024, 1), (err.strip().splitlines() or [""])[-1]


def bench(train: Path, work: Path, cap_mb: int, factor: float, steps: int, repeats: int, params_path: Path,
          threads: int = 0) -> list[dict]:
    """The table's rows: one per (file, source), steps/s the median of `repeats` interleaved child runs."""
    cap = cap_mb * 2**20
    small = train.stat().st_size
    big = work / "big_train.h5"
    size = repeat_items(train, big, math.ceil(factor * cap / check_image_file(train, SCALE).nbytes()))
    runs = {("fits", train, "memory"): [], ("fits", train, "lazy"): [], (f"{size / cap:.1f}x cap", big, "auto"): []}
    rows = {}
    for _ in range(repeats):
        for key in runs:
            result, peak, err = run_capped(child_command(key[1], key[2], steps, params_path, threads), cap)
            if result is None:
                raise RuntimeError(f"{key[2]} source on {key[1]} failed under the {cap_mb} MB cap: {err}")
            runs[key].append(result["steps_per_s"])
            row = rows.setdefault(key, {"data": key[0], "file_mb": round((small if key[1] == train else size) / 2**20),
                                        "cap_mb": cap_mb, "source": key[2], "chosen": result["chosen"], "peak_mb": 0,
                                        "main_peak_mb": 0})
            row["peak_mb"] = max(row["peak_mb"], peak)
            row["main_peak_mb"] = max(row["main_peak_mb"], result["main_peak_mb"])
    for key, row in rows.items():
        row["steps_per_s"] = sorted(runs[key])[len(runs[key]) // 2]
    result, peak, err = run_capped(child_command(big, "memory", steps, params_path, threads), cap)
    refused = {"data": f"{size / cap:.1f}x cap", "file_mb": round(size / 2**20), "cap_mb": cap_mb, "source": "memory",
               "chosen": "memory", "peak_mb": peak, "steps_per_s": result["steps_per_s"] if result else "failed",
               "note": err[:90]}
    return [*rows.values(), refused]


COLUMNS = [("data", "data"), ("file_mb", "file MB"), ("cap_mb", "cap MB"), ("source", "data_source"),
           ("chosen", "used"), ("peak_mb", "peak RSS MB (all processes)"), ("main_peak_mb", "peak RSS MB (trainer)"),
           ("steps_per_s", "steps/s"), ("note", "note")]


def main() -> None:
    if sys.argv[1:2] == ["child"]:
        path, source, steps, params, threads = sys.argv[2:7]
        if int(threads):
            torch.set_num_threads(int(threads))
        print(json.dumps(train_child(Path(path), source, int(steps), load_params(Path(params)))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, required=True, help="params.yaml: the pretrain step and loader workers")
    parser.add_argument("--train", type=Path, required=True, help="train.h5 from the prepare stage (x4)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--cap-mb", type=int, default=2048, help="address-space cap of the training process (MB)")
    parser.add_argument("--factor", type=float, default=4.0, help="the big file's data is at least this x the cap")
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per run")
    parser.add_argument("--work", type=Path, help="folder for the big file (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="one run per source instead of three")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads of the trainer (0: default)")
    args = parser.parse_args()
    start = environment()
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        rows = bench(args.train, Path(work), args.cap_mb, args.factor, args.steps, 1 if args.quick else 3, args.params,
                     args.threads)
    write_json(args.out, {"bounded": rows, "trainer_threads": args.threads or torch.get_num_threads()}, start)
    print(format_table(rows, COLUMNS))


if __name__ == "__main__":
    main()
