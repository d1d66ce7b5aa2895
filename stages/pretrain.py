"""DVC stage `pretrain`: PSNR-oriented training of a generator on the prepared patches.

Re-running after an interruption resumes from --checkpoint when it belongs to the same params.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from srcore.checkpoint import save_generator
from srcore.config import CommonConfig, load_params, params_group
from srcore.distributed import finish_distributed
from srcore.modelcard import build_card
from srcore.models import build_generator
from srcore.stage import run_stage
from srcore.runs import open_live, resumable_step
from srcore.train import PatchBank, PretrainSettings, Runtime, pretrain, run_description, start_runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True, help="train.h5 from the prepare stage")
    parser.add_argument("--val", type=Path, required=True, help="val.h5 from the prepare stage")
    parser.add_argument("--checkpoint", type=Path, required=True, help="resumable training state")
    parser.add_argument("--out", type=Path, required=True, help="the trained generator (EMA weights)")
    parser.add_argument("--live", type=Path, required=True, help="dvclive folder")
    args = parser.parse_args()
    params = load_params(args.params)
    common = params_group(params, CommonConfig, "common")
    settings = params_group(params, PretrainSettings, "pretrain")
    runtime = params_group(params, Runtime, "runtime")
    runtime, kernels, dist = start_runtime(runtime, common.seed)  # joins torchrun's processes, if any
    model = build_generator(settings.generator, scale=common.scale, kernels=kernels, **settings.generator_args)
    train, val = (PatchBank.from_h5(path, common.seed, common.scale) for path in (args.train, args.val))
    resume_at = resumable_step(args.checkpoint, run_description(settings, common.scale, train, val, runtime, dist.world))
    with open_live(args.live, resume_at, main=dist.main) as live:
        ema = pretrain(model, train, val, settings, runtime, scale=common.scale, checkpoint=args.checkpoint,
                       live=live, dist=dist)
    if dist.main:
        card = build_card(ema.module, recipe="pretrain", steps=settings.steps,
                          params={"common": common, "runtime": runtime, "pretrain": settings},
                          data={"train": args.train, "val": args.val, "train_fingerprint": train.fingerprint()},
                          scores=live.summary)
        save_generator(args.out, ema.module, settings.steps, card=card)
    finish_distributed(dist)


if __name__ == "__main__":
    run_stage("pretrain", main)
