"""DVC stage `pretrain`: PSNR-oriented training of a generator on random crops of the prepared images.

An interrupted run resumes from its state under --runs when re-run with the same params, data and code.
"""
from __future__ import annotations

from srcore.config import load_params, params_group
from srcore.data import PatchBank
from srcore.engine import Loop, fit
from srcore.imports import code_fingerprint
from srcore.mixed_scales import open_scales
from srcore.recipes import data_digests, pretrain
from srcore.runtime import start_runtime
from srcore.settings import CommonSettings, PretrainSettings, Runtime
from srcore.stage import run_stage, training_arguments


def main() -> None:
    args = training_arguments(__doc__).parse_args()
    params = load_params(args.params)
    common = params_group(params, CommonSettings, "common")
    settings = params_group(params, PretrainSettings, "pretrain")
    settings.check_scale(common.scale)
    runtime, kernels, dist = start_runtime(params_group(params, Runtime, "runtime"), common.seed)  # joins torchrun
    train = open_scales(args.train, common.scale, settings.generator_args.get("scales"), settings.patch_size,
                        common.seed, runtime.data_source, runtime.loader_workers, copies=dist.local_world)
    val = PatchBank.from_h5(args.val, common.scale)
    if dist.main:
        print(f"pretrain: training data {args.train}: {train.describe()}")
    recipe = pretrain.build(settings, common, runtime, data=data_digests(train, val), kernels=kernels,
                            dist=dist, code=code_fingerprint(__file__))
    fit(recipe, train, val, Loop.of(settings), runtime, scale=common.scale, runs=args.runs, live=args.live,
        out=args.out, dist=dist, sources={"train": args.train, "val": args.val})


if __name__ == "__main__":
    run_stage("pretrain", main)
