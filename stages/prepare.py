"""DVC stage `prepare`: training images -> HDF5 of whole images and their LR (train.h5), validation tiles (val.h5).

Training crops the images of train.h5 at random (srcore.data). The validation images are a seeded hold-out of
the training folders, never the benchmark sets. Their file holds non-overlapping `val_patch_size` tiles (centred
grid), bigger than training crops so PSNR during training is measured on more context.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from srcore.config import load_params, params_group
from srcore.patches import prepare
from srcore.settings import CommonSettings, PrepareSettings
from srcore.stage import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--train", type=Path, nargs="+", required=True,
                        help="folders of training images (their subfolders included)")
    parser.add_argument("--out-train", type=Path, required=True, help="train.h5 to write")
    parser.add_argument("--out-val", type=Path, required=True, help="val.h5 to write")
    args = parser.parse_args()
    params = load_params(args.params)
    common = params_group(params, CommonSettings, "common")
    settings = params_group(params, PrepareSettings, "prepare")
    settings.check_scale(common.scale)
    # The params that made the files travel with them. `workers` is left out: it changes how fast the files
    # are made, not a byte of them; so is an empty `more_scales`, so that single-scale files stay byte for
    # byte what they were before multi-scale data existed.
    made_by = {key: value for key, value in asdict(settings).items()
               if key != "workers" and not (key == "more_scales" and not value)}
    attrs = {"params.common": json.dumps(asdict(common)), "params.prepare": json.dumps(made_by)}
    for line in prepare(args.train, args.out_train, args.out_val, scale=common.scale, seed=common.seed,
                        attrs=attrs, **asdict(settings)):
        print(line)


if __name__ == "__main__":
    run_stage("prepare", main)
