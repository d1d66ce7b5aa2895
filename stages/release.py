"""DVC stage `release`: the PSNR and GAN generators as the models srcore ships (srcore.release).

Writes --out/<name>.safetensors for each --model NAME=CHECKPOINT, with its card and its scores from --scores
(evaluate's metrics JSON). Git tracks the files, so `srcore upscale --model srcore:psnr` works in a fresh clone.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from srcore.release import benchmark_scores, release_model
from srcore.stage import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=CHECKPOINT",
                        help="a generator to ship as NAME; NAME is also its entry in --scores")
    parser.add_argument("--scores", type=Path, required=True, help="evaluate's metrics JSON")
    parser.add_argument("--out", type=Path, required=True, help="folder of the shipped .safetensors files")
    args = parser.parse_args()
    evaluation = json.loads(args.scores.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    for entry in args.model:
        name, _, checkpoint = entry.partition("=")
        if not name or not checkpoint:
            raise ValueError(f"--model {entry!r}: expected NAME=CHECKPOINT")
        out = args.out / f"{name}.safetensors"
        release_model(Path(checkpoint), out, benchmark_scores(evaluation, name), evaluation["scale"])
        print(f"{checkpoint} -> {out} ({out.stat().st_size / 2**20:.1f} MB)")


if __name__ == "__main__":
    run_stage("release", main)
