"""DVC stage `evaluate`: bicubic and every trained model on the benchmark sets, by the SR protocol.

Writes the metrics JSON (PSNR, SSIM, NIQE per dataset and model), a bar chart per metric and, per
dataset, a side-by-side crop (bicubic | models... | HR) and a perception-distortion plot.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from srcore.atomic import write_text
from srcore.config import load_params, params_group
from srcore.scoreboard import parse_models, score_models
from srcore.settings import CommonSettings, EvaluateSettings
from srcore.stage import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--benchmark", type=Path, required=True, help="folder holding one folder per dataset")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                        help="a generator to score; a folder stands for the interpolated models in it")
    parser.add_argument("--out", type=Path, required=True, help="metrics JSON")
    parser.add_argument("--plots", type=Path, required=True, help="folder for charts and crops")
    args = parser.parse_args()
    params = load_params(args.params)
    settings = params_group(params, EvaluateSettings, "evaluate")
    scale = params_group(params, CommonSettings, "common").scale
    results = score_models(parse_models(args.model), args.benchmark, plots=args.plots, scale=scale,
                           **asdict(settings))
    write_text(args.out, json.dumps({"scale": scale, **results}, indent=2) + "\n")  # atomic
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    run_stage("evaluate", main)
