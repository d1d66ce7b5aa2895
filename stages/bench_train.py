"""`make bench-train`: the training step of each generator per mode (fp32 NCHW, channels_last, bf16, compile).

Writes the figures as JSON (--out) and prints them as tables. --quick: the default EDSR and the GAN step
only, fewer repeats (about a minute); the full run covers every generator at its default and paper size.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from srcore.bench import MODES, environment, format_table
from srcore.bench_train import CONFIGS, QUICK_CONFIGS, precision_check, run

TRAIN_COLUMNS = [("config", "config"), ("mode", "mode"), ("batch", "B"), ("steps_per_s", "steps/s"),
                 ("median_ms", "ms/step"), ("best_ms", "best ms"), ("speedup", "x fp32"), ("gflop_per_step", "GFLOP/step"),
                 ("gflops", "GFLOP/s"), ("pct_peak", "% bf16 peak*"), ("peak_mem_mb", "peak MB")]
MICRO_COLUMNS = [("op", "op"), ("shape", "shape"), ("dtype", "dtype"), ("median_ms", "median ms"),
                 ("best_ms", "best ms"), ("repeats", "n")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="default EDSR and GAN step only, 3 repeats")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), help="override the configs")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--repeats", type=int, help="timed steps per mode (default 3 quick, 4 full)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--psnr-check", type=Path, nargs=2, metavar=("TRAIN_H5", "VAL_H5"),
                        help="instead: validation PSNR of a short tiny-EDSR pretrain in fp32 vs bf16 + channels_last")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.psnr_check:
        return psnr_check(*args.psnr_check, args.out, args.quick)
    configs = args.configs or list(QUICK_CONFIGS if args.quick else CONFIGS)
    start = environment()
    result = run(configs, args.modes, args.repeats or (3 if args.quick else 4))
    result["environment"] = {"start": start, "end": environment()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"load average at start {start['loadavg']}, at end {result['environment']['end']['loadavg']}; "
          f"{start['threads']} threads, torch {start['torch']}, {start['cpu']}")
    print("matmul (2048^3 torch.mm), GFLOP/s: " + ", ".join(
        f"{k} median {v['gflops_median']}, best {v['gflops_best']}" for k, v in result["matmul_peak"].items()))
    print(format_table(result["train"], TRAIN_COLUMNS))
    print("* of the best bf16 matmul figure at the start or end of the run; FLOPs: convolutions and matmuls only")
    print(format_table(result["micro"], MICRO_COLUMNS))


def psnr_check(train: Path, val: Path, out: Path, quick: bool) -> None:
    start = environment()
    rows = precision_check(train, val, steps=300 if quick else 600, seeds=(0,) if quick else (0, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"psnr_check": rows, "environment": {"start": start, "end": environment()}}, indent=1))
    print(f"load average at start {start['loadavg']}, at end {environment()['loadavg']}")
    print(format_table(rows, [("seed", "seed"), ("precision", "precision"), ("channels_last", "channels_last"),
                              ("steps", "steps"), ("val_psnr_model", "val PSNR (dB)"), ("val_psnr_ema", "EMA val PSNR (dB)"), ("seconds", "seconds")]))


if __name__ == "__main__":
    main()
