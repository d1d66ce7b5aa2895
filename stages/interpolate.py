"""DVC stage `interpolate`: ESRGAN network interpolation between the PSNR and GAN generators.

Writes one checkpoint per alpha of the `interpolate` params group into --out, as alpha_{α:.2f}.pt
(0: the PSNR model, 1: the GAN model); files from earlier runs with other alphas are removed.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from srcore.config import from_dict, load_params
from srcore.interpolate import interpolate_checkpoints


@dataclass(frozen=True)
class InterpolateConfig:
    """The `interpolate` params group; srcore.interpolate checks each alpha is in [0, 1]."""
    alphas: tuple[float, ...]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--psnr", type=Path, required=True, help="PSNR-oriented generator checkpoint")
    parser.add_argument("--gan", type=Path, required=True, help="GAN fine-tuned generator checkpoint")
    parser.add_argument("--out", type=Path, required=True, help="folder of alpha_*.pt checkpoints to write")
    args = parser.parse_args()
    config = from_dict(InterpolateConfig, load_params(args.params)["interpolate"], "interpolate")
    for path in interpolate_checkpoints(args.psnr, args.gan, list(config.alphas), args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
