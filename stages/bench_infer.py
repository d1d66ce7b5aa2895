"""`make bench-infer`: megapixels/s of tiled upscaling (srcore.infer.upscale_tiled) per generator and mode.

Writes JSON (--out) and prints a table. --quick: the default-size generators, 2 repeats, no compile.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from srcore.bench import MODES, environment, format_table
from srcore.bench_infer import INFER_CONFIGS, QUICK_INFER_CONFIGS, run

COLUMNS = [("config", "config"), ("mode", "mode"), ("out_mp", "out MP"), ("median_ms", "median ms"),
           ("best_ms", "best ms"), ("mp_per_s", "MP/s"), ("speedup", "x fp32")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--configs", nargs="+", choices=list(INFER_CONFIGS))
    parser.add_argument("--modes", nargs="+", choices=list(MODES))
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--repeats", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = args.configs or list(QUICK_INFER_CONFIGS if args.quick else INFER_CONFIGS)
    modes = args.modes or [m for m in MODES if not (args.quick and MODES[m].compile)]
    start = environment()
    result = run(configs, modes, args.repeats or (2 if args.quick else 3))
    result["environment"] = {"start": start, "end": environment()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"load average at start {start['loadavg']}, at end {result['environment']['end']['loadavg']}; "
          f"{start['threads']} threads, torch {start['torch']}")
    print(format_table(result["infer"], COLUMNS))


if __name__ == "__main__":
    main()
