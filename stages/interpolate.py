"""DVC stage `interpolate`: ESRGAN network interpolation between the PSNR and GAN generators.

Writes one checkpoint per alpha of the `interpolate` params group into --out, as alpha_{α:.2f}.pt
(0: the PSNR model, 1: the GAN model); files from earlier runs with other alphas are removed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from srcore.config import load_params, params_group
from srcore.interpolate import interpolate_checkpoints
from srcore.settings import InterpolateSettings
from srcore.stage import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--psnr", type=Path, required=True, help="PSNR-oriented generator checkpoint")
    parser.add_argument("--gan", type=Path, required=True, help="GAN fine-tuned generator checkpoint")
    parser.add_argument("--out", type=Path, required=True, help="folder of alpha_*.pt checkpoints to write")
    args = parser.parse_args()
    settings = params_group(load_params(args.params), InterpolateSettings, "interpolate")
    for path in interpolate_checkpoints(args.psnr, args.gan, list(settings.alphas), args.out,
                                        where="interpolate.alphas"):
        print(f"wrote {path}")


if __name__ == "__main__":
    run_stage("interpolate", main)
