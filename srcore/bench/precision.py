"""Is bf16 sound? Validation PSNR of the same short tiny-EDSR pretrain in fp32 NCHW and in bf16 + channels_last.

    python -m srcore.bench.precision --params params.yaml --train data/prepared/train.h5 \
        --val data/prepared/val.h5 --out metrics/bench_precision.json [--quick]       (make bench-precision)

The runs differ only in precision and memory format: the pipeline's pretrain recipe and engine, a tiny EDSR
(16 features, 4 blocks, global residual) on random crops of the first `images` training images.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from srcore.bench.common import environment, format_table, write_json
from srcore.config import load_params, params_group
from srcore.data import PatchBank, TrainingImages, open_training_images
from srcore.engine import Loop, train
from srcore.recipes import pretrain
from srcore.runs import RunStore
from srcore.settings import CommonSettings, PretrainSettings, Runtime
from srcore.validation import validate

COLUMNS = [("seed", "seed"), ("precision", "precision"), ("channels_last", "channels_last"), ("steps", "steps"),
           ("val_psnr_model", "val PSNR (dB)"), ("val_psnr_ema", "EMA val PSNR (dB)"), ("seconds", "seconds")]


def precision_check(train_h5: Path, val_h5: Path, steps: int, seeds: tuple[int, ...], params: dict[str, Any],
                    images: int = 100) -> list[dict]:
    """Validation PSNR (Y channel; EMA and raw weights) per (seed, precision): one row each."""
    settings = params_group(params, PretrainSettings, "pretrain")
    every = open_training_images(train_h5, 4, settings.patch_size, seed=0, source="memory", workers=0).images
    val = PatchBank.from_h5(val_h5, scale=4)
    # EMA decay 0.99: with the pipeline's 0.999, 0.999^600 = 55% of the EMA would still be the shared init.
    settings = replace(settings, generator="edsr",
                       generator_args=dict(num_feat=16, num_block=4, global_residual=True), steps=steps,
                       batch_size=16, ema_decay=0.99, log_every=steps, val_every=steps, ckpt_every=steps)
    base = replace(params_group(params, Runtime, "runtime"), device="cpu", kernels="torch")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            subset = TrainingImages.in_memory(every.hr[:images], every.lq[:images], 4, settings.patch_size, seed)
            for precision, channels_last in (("fp32", False), ("bf16", True)):
                runtime = replace(base, precision=precision, channels_last=channels_last)
                torch.manual_seed(seed)
                recipe = pretrain.build(settings, CommonSettings(seed, 4), runtime, data={}, code="bench")
                start = time.perf_counter()
                state = train(recipe, subset, val, Loop.of(settings), runtime, scale=4,
                              store=RunStore(tmp, "precision", recipe.run))
                rows.append({"seed": seed, "precision": precision, "channels_last": channels_last, "steps": steps,
                             "val_psnr_ema": round(validate(state.ema.module, val, 4, runtime), 4),
                             "val_psnr_model": round(validate(state.generator, val, 4, runtime), 4),
                             "seconds": round(time.perf_counter() - start, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True, help="train.h5 of the prepare stage")
    parser.add_argument("--val", type=Path, required=True, help="val.h5 of the prepare stage")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="300 steps, one seed")
    args = parser.parse_args()
    start = environment()
    rows = precision_check(args.train, args.val, steps=300 if args.quick else 600,
                           seeds=(0,) if args.quick else (0, 1), params=load_params(args.params))
    write_json(args.out, {"psnr_check": rows}, start)
    print(format_table(rows, COLUMNS))


if __name__ == "__main__":
    main()
