"""DVC stage `prepare`: training images -> HDF5 patch pairs (train.h5) and held-out whole images (val.h5).

The validation images are a seeded hold-out of the training folders, never the benchmark sets. Their
file holds non-overlapping `val_patch_size` tiles (centred grid), bigger than training patches so PSNR
during training is measured on more context.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from srcore.atomic import atomic_path
from srcore.config import CommonConfig, load_params, params_group
from srcore.imageio import list_images
from srcore.patches import split_validation, write_patches
from srcore.stage import run_stage


@dataclass(frozen=True)
class PrepareConfig:
    """The `prepare` params group; sizes in HR pixels."""
    patch_size: int = 96
    stride: int = 48
    val_images: int = 10       # whole images held out of the training folders for validation
    val_patch_size: int = 192  # validation tiles, cut on a grid with stride = val_patch_size
    workers: int = 1           # processes reading and cropping images; the files are the same for any count

    def __post_init__(self):
        for name in ("patch_size", "stride", "val_images", "val_patch_size", "workers"):
            if not getattr(self, name) > 0:
                raise ValueError(f"prepare.{name} must be > 0, got {getattr(self, name)}")

    def check_scale(self, scale: int) -> None:
        """Each patch size must give whole LR patches at `scale` (common.scale)."""
        for name in ("patch_size", "val_patch_size"):
            if getattr(self, name) % scale:
                raise ValueError(f"prepare.{name}={getattr(self, name)} is not divisible by common.scale={scale}; "
                                 f"expected a multiple of {scale} (LR patches of a whole number of pixels)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--train", type=Path, nargs="+", required=True, help="folders of training images")
    parser.add_argument("--out-train", type=Path, required=True, help="train.h5 to write")
    parser.add_argument("--out-val", type=Path, required=True, help="val.h5 to write")
    args = parser.parse_args()
    params = load_params(args.params)
    common = params_group(params, CommonConfig, "common")
    config = params_group(params, PrepareConfig, "prepare")
    config.check_scale(common.scale)
    images = [path for folder in args.train for path in list_images(folder)]
    train, val = split_validation(images, config.val_images, common.seed)
    # The params that made the files travel with them (write_patches stores the patch geometry itself).
    # `workers` is left out: it changes how fast the files are made, not a byte of them.
    made_by = {key: value for key, value in asdict(config).items() if key != "workers"}
    attrs = {"params.common": json.dumps(asdict(common)), "params.prepare": json.dumps(made_by)}
    # Both files are renamed into place only once both are written: a failure leaves the old pair as it was.
    with atomic_path(args.out_train) as train_tmp, atomic_path(args.out_val) as val_tmp:
        jobs = [(args.out_train, train_tmp, train, config.patch_size, config.stride),
                (args.out_val, val_tmp, val, config.val_patch_size, config.val_patch_size)]
        for out, temporary, paths, size, stride in jobs:
            stats = write_patches(paths, temporary, scale=common.scale, patch_size=size, stride=stride,
                                  seed=common.seed, attrs=attrs, name=out, workers=config.workers)
            print(f"{out}: {stats.patches} patches from {stats.images} images "
                  f"({len(stats.too_small) + len(stats.unreadable)} skipped)")


if __name__ == "__main__":
    run_stage("prepare", main)
