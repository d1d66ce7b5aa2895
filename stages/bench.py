"""DVC stage `bench`: time the Triton kernels against eager and compiled PyTorch -> metrics JSON.

On a machine without CUDA the JSON says {"skipped": true, "reason": "no CUDA device", ...} and the stage
still succeeds, so `dvc repro` runs everywhere.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from kernels import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = bench.run(tf32=True)
    print(bench.format_report(result))
    bench.write_json(result, args.out)  # makes the parent folder; atomic


if __name__ == "__main__":
    main()
