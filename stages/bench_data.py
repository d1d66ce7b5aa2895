"""`make bench-data`: input pipeline vs training consumption, and `prepare` throughput for 1 and 2 workers.

Writes JSON (--out) and prints tables. --quick: fewer steps and a 30-image prepare subset.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from srcore.bench import environment, format_table
from srcore.bench_data import bench_loading, bench_prepare
from srcore.imageio import list_images

LOAD_COLUMNS = [("source", "batch source"), ("batch", "B"), ("patches_per_s_alone", "patches/s alone"),
                ("steps_per_s_training", "train steps/s"), ("patches_per_s_consumed", "patches/s consumed")]
PREPARE_COLUMNS = [("workers", "workers"), ("images", "images"), ("median_ms", "median ms"), ("best_ms", "best ms"),
                   ("images_per_s", "images/s"), ("speedup", "x 1 worker"), ("same_bytes", "same bytes")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=Path, required=True, help="train.h5 from the prepare stage")
    parser.add_argument("--images", type=Path, nargs="+", required=True, help="folders of raw training images")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    images = [path for folder in args.images for path in list_images(folder)]
    start = environment()
    loading = bench_loading(args.train, steps=4 if args.quick else 8, repeats=3 if args.quick else 5)
    prepare = bench_prepare(images[:30] if args.quick else images, repeats=1 if args.quick else 2)
    result = {"loading": loading, "prepare": prepare, "environment": {"start": start, "end": environment()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"load average at start {start['loadavg']}, at end {result['environment']['end']['loadavg']}; "
          f"{start['threads']} threads, torch {start['torch']}")
    print(format_table(loading, LOAD_COLUMNS))
    print(format_table(prepare, PREPARE_COLUMNS))


if __name__ == "__main__":
    main()
