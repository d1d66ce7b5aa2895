"""How far `srcore upscale --precision bf16` is from its fp32 default, on trained models and real images.

    python -m srcore.bench.upscale_error [--models srcore:psnr srcore:gan] [--images 'data/benchmark/Set*/LR_bicubic/X4/*.png']

Each image goes through `srcore.infer.upscale_image` in fp32 and in bf16 autocast (same tiles); the uint8
outputs are compared. fp32 stays the default unless bf16 is within 1/255 everywhere (issue 19).
"""
from __future__ import annotations

import argparse
import glob

import numpy as np

from srcore.imageio import read_image
from srcore.infer import upscale_image
from srcore.release import model_path
from srcore.weights import load_generator


def compare(model, paths: list[str], tile: int, pad: int) -> dict[str, float]:
    """Largest |bf16 - fp32| in grey levels, and the share of values off by more than one level / at all."""
    worst, over_one, differ, total = 0, 0, 0, 0
    for path in paths:
        image = read_image(path)
        fp32, bf16 = (upscale_image(model, image, model.arch_args["scale"], tile=tile, pad=pad, precision=p,
                                    quiet=True).astype(np.int64) for p in ("fp32", "bf16"))
        diff = np.abs(fp32 - bf16)
        worst, over_one = max(worst, int(diff.max())), over_one + int((diff > 1).sum())
        differ, total = differ + int((diff > 0).sum()), total + diff.size
    return {"max": worst, "over_one_percent": 100 * over_one / total, "differ_percent": 100 * differ / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["srcore:psnr", "srcore:gan"])
    parser.add_argument("--images", default="data/benchmark/Set*/LR_bicubic/X4/*.png")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--tile-pad", type=int, default=40)
    args = parser.parse_args()
    paths = sorted(glob.glob(args.images))
    if not paths:
        raise SystemExit(f"no images match {args.images!r}")
    for name in args.models:
        found = compare(load_generator(model_path(name)), paths, args.tile, args.tile_pad)
        print(f"{name}: bf16 vs fp32 over {len(paths)} images: max |diff| {found['max']}/255, "
              f"{found['over_one_percent']:.3f}% of values off by more than 1/255, "
              f"{found['differ_percent']:.2f}% differ at all")


if __name__ == "__main__":
    main()
