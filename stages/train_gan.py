"""DVC stage `train_gan`: GAN fine-tuning of the PSNR generator against a VGG-style discriminator.

G starts from --init (the pretrain stage's model, or any generator file srcore.weights reads), D from
scratch. An interrupted run resumes from its state under --runs when re-run with the same params, data,
initial model and code.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from srcore.config import load_params, params_group
from srcore.data import PatchBank, open_training_images
from srcore.engine import Loop, fit
from srcore.imports import code_fingerprint
from srcore.recipes import data_digests, gan
from srcore.runtime import start_runtime
from srcore.settings import CommonSettings, GanSettings, Runtime
from srcore.stage import run_stage, training_arguments
from srcore.weights import load_generator


def main() -> None:
    parser = training_arguments(__doc__)
    parser.add_argument("--init", type=Path, required=True, help="PSNR-oriented generator to start from")
    args = parser.parse_args()
    params = load_params(args.params)
    common = params_group(params, CommonSettings, "common")
    settings = params_group(params, GanSettings, "gan")
    settings.check_scale(common.scale)
    runtime, kernels, dist = start_runtime(params_group(params, Runtime, "runtime"), common.seed)  # joins torchrun
    generator = load_generator(args.init, kernels, expect_scale=common.scale)
    if dist.main:
        print(f"train_gan: {gan.perceptual_name(settings)}")
    train = open_training_images(args.train, common.scale, settings.patch_size, common.seed, runtime.data_source,
                                 runtime.loader_workers, copies=dist.local_world)
    val = PatchBank.from_h5(args.val, common.scale)
    if dist.main:
        print(f"train_gan: training data {args.train}: {train.describe()}")
    recipe = gan.build(settings, common, runtime, data=data_digests(train, val), generator=generator,
                       init_digest=hashlib.sha256(args.init.read_bytes()).hexdigest(), kernels=kernels, dist=dist,
                       code=code_fingerprint(__file__))
    fit(recipe, train, val, Loop.of(settings), runtime, scale=common.scale, runs=args.runs, live=args.live,
        out=args.out, dist=dist, sources={"train": args.train, "val": args.val, "init": args.init})


if __name__ == "__main__":
    run_stage("train_gan", main)
