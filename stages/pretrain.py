"""DVC stage `pretrain`: PSNR-oriented training of a generator on the prepared patches.

Re-running after an interruption resumes from --checkpoint when it belongs to the same params.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from dvclive import Live

from srcore.checkpoint import save_checkpoint
from srcore.config import CommonConfig, from_dict, load_params
from srcore.models import build_generator
from srcore.ops import resolve_backend
from srcore.train import (PatchBank, PretrainSettings, Runtime, pretrain, resumable_step, run_description,
                          trim_live_logs)


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
    common = from_dict(CommonConfig, params["common"], "common")
    settings = from_dict(PretrainSettings, params["pretrain"], "pretrain")
    runtime = from_dict(Runtime, params["runtime"], "runtime")
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    torch.manual_seed(common.seed)
    kernels = resolve_backend(runtime.kernels, runtime.device)
    model = build_generator(settings.generator, scale=common.scale, kernels=kernels, **settings.generator_args)
    train, val = PatchBank.from_h5(args.train, common.seed), PatchBank.from_h5(args.val, common.seed)
    resume_at = resumable_step(args.checkpoint, run_description(settings, common.scale, train, val))
    resuming = resume_at is not None
    if resuming:
        trim_live_logs(args.live, resume_at)
    else:
        shutil.rmtree(args.live, ignore_errors=True)  # a fresh run starts fresh curves
    with Live(str(args.live), resume=resuming, save_dvc_exp=False, dvcyaml=False, report=None) as live:
        ema = pretrain(model, train, val, settings, runtime, scale=common.scale, checkpoint=args.checkpoint,
                       live=live)
    final = ema.module.to("cpu", memory_format=torch.contiguous_format)
    save_checkpoint(args.out, {"arch": model.name, "arch_args": model.arch_args, "model": final.state_dict(),
                               "step": settings.steps})


if __name__ == "__main__":
    main()
