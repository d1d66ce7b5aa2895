"""DVC stage `train_gan`: GAN fine-tuning of the PSNR generator against a VGG-style discriminator.

G starts from --init (the pretrain stage's model), D from scratch. Re-running after an interruption resumes
from --checkpoint when it belongs to the same params, data and initial model.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from srcore.checkpoint import generator_from_checkpoint, save_generator
from srcore.config import CommonConfig, load_params, params_group
from srcore.distributed import finish_distributed
from srcore.discriminator import build_discriminator
from srcore.gan import GanSettings, run_description, train_gan
from srcore.modelcard import build_card
from srcore.stage import run_stage
from srcore.runs import open_live, resumable_step
from srcore.train import PatchBank, Runtime, start_runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--init", type=Path, required=True, help="PSNR-oriented generator to start from")
    parser.add_argument("--train", type=Path, required=True, help="train.h5 from the prepare stage")
    parser.add_argument("--val", type=Path, required=True, help="val.h5 from the prepare stage")
    parser.add_argument("--checkpoint", type=Path, required=True, help="resumable training state")
    parser.add_argument("--out", type=Path, required=True, help="the GAN generator (EMA weights)")
    parser.add_argument("--live", type=Path, required=True, help="dvclive folder")
    args = parser.parse_args()
    params = load_params(args.params)
    common = params_group(params, CommonConfig, "common")
    settings = params_group(params, GanSettings, "gan")
    runtime = params_group(params, Runtime, "runtime")
    runtime, kernels, dist = start_runtime(runtime, common.seed)  # joins torchrun's processes, if any
    generator = generator_from_checkpoint(args.init, kernels=kernels, expect_scale=common.scale)
    discriminator = build_discriminator("vgg", **settings.discriminator_args)
    perceptual = "none" if settings.perceptual_weight == 0 else settings.perceptual
    if dist.main:
        print(f"train_gan: perceptual term: {perceptual}"
              + (f" (VGG19 {dict(settings.vgg_layers)} from {settings.vgg_weights})" if perceptual == "vgg" else "")
              + f"; adversarial: {settings.adversarial}")
    train, val = (PatchBank.from_h5(path, common.seed, common.scale) for path in (args.train, args.val))
    resume_at = resumable_step(args.checkpoint, run_description(settings, common.scale, args.init, train, val,
                                                                  runtime, dist.world))
    with open_live(args.live, resume_at, main=dist.main) as live:
        ema = train_gan(generator, discriminator, train, val, settings, runtime, scale=common.scale, init=args.init,
                        checkpoint=args.checkpoint, backend=kernels, live=live, dist=dist)
    if dist.main:
        card = build_card(ema.module, recipe="gan", steps=settings.steps,
                          params={"common": common, "runtime": runtime, "gan": settings},
                          data={"init": args.init, "train": args.train, "val": args.val,
                                "train_fingerprint": train.fingerprint()}, scores=live.summary)
        save_generator(args.out, ema.module, settings.steps, card=card)
    finish_distributed(dist)


if __name__ == "__main__":
    run_stage("train_gan", main)
