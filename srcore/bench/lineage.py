"""The lineage table (`make lineage`): every README preset trained once at a CPU step budget, scored beside
the published numbers (docs/lineage.md).

Each preset runs as `dvc exp run -n lineage-<preset> pretrain <its -S flags> -S pretrain.steps=<budget>` in
this checkout, its milestones scaled by budget / params.yaml's pretrain.steps. params.yaml and dvc.lock are
restored from git before each run, and the metrics and outputs after the last one (`dvc checkout`), so the
checkout must have no uncommitted changes to them. DVC's run-cache makes a finished preset free the next
time, and `.runs/` resumes an interrupted one. Each trained models/psnr.pt is scored on Set5 and Set14 at
every scale it has (Y-channel PSNR/SSIM, the evaluate stage's protocol).

    python -m srcore.bench.lineage --readme README.md --params params.yaml --benchmark data/benchmark \
        --model models/psnr.pt --out metrics/lineage.json [--presets srcnn vdsr] [--rates]

--rates only times a few training steps of each preset (x4, batch and patch from params.yaml) and prints
steps/s and the steps that BUDGET_MINUTES would give on this CPU: how the budgets below were chosen.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from srcore.bench.common import count_flops, environment, interleaved, summary
from srcore.config import load_params, params_group
from srcore.evaluate import evaluate_dataset, mean_scores, model_upscaler
from srcore.multiscale import model_scales, select_scale
from srcore.recipes import pretrain
from srcore.runtime import start_runtime, to_device
from srcore.settings import CommonSettings, PretrainSettings, Runtime
from srcore.weights import load_generator

# Pretrain steps per preset: about BUDGET_MINUTES of training each on 2 cores of an AMD EPYC Zen 4 (no AMX),
# bf16 autocast, batch 16 of 96-px HR crops: `--rates` there, times 0.8 (validation, checkpoints and data take
# ~20% of a pipeline run: the default step does 9.2 steps/s in --rates and 7.4 in the pretrain stage).
BUDGET_MINUTES = 8
BUDGET = {"default": 3500, "srcnn": 2300, "vdsr": 240, "srresnet": 680, "edsr-baseline": 1000,
          "mdsr-baseline": 900, "rrdb-psnr": 120}
DATASETS = ("Set5", "Set14")
RESTORED = ("params.yaml", "dvc.lock", "metrics")  # what `dvc exp run` changes in git's files
# Published PSNR / SSIM (Y channel) of the full-size models: the EDSR paper's Table 2 (Lim et al. 2017) for
# bicubic, SRCNN, VDSR, SRResNet, EDSR and MDSR; ESRGAN's PSNR-oriented RRDBNet (Wang et al. 2018).
PUBLISHED = {
    "bicubic": {"Set5": {2: (33.66, .9299), 3: (30.39, .8682), 4: (28.42, .8104)},
                "Set14": {2: (30.24, .8688), 3: (27.55, .7742), 4: (26.00, .7027)}},
    "srcnn": {"Set5": {2: (36.66, .9542), 3: (32.75, .9090), 4: (30.48, .8628)},
              "Set14": {2: (32.42, .9063), 3: (29.28, .8209), 4: (27.49, .7503)}},
    "vdsr": {"Set5": {2: (37.53, .9587), 3: (33.66, .9213), 4: (31.35, .8838)},
             "Set14": {2: (33.03, .9124), 3: (29.77, .8314), 4: (28.01, .7674)}},
    "srresnet": {"Set5": {4: (32.05, .8910)}, "Set14": {4: (28.53, .7804)}},
    "edsr-baseline": {"Set5": {2: (38.11, .9601), 3: (34.65, .9282), 4: (32.46, .8968)},  # EDSR, 32x256
                      "Set14": {2: (33.92, .9195), 3: (30.52, .8462), 4: (28.80, .7876)}},
    "mdsr-baseline": {"Set5": {2: (38.11, .9602), 3: (34.66, .9280), 4: (32.50, .8973)},  # MDSR, 80x64
                      "Set14": {2: (33.85, .9198), 3: (30.44, .8452), 4: (28.72, .7857)}},
    "rrdb-psnr": {"Set5": {4: (32.73, .9011)}, "Set14": {4: (28.99, .7917)}},
}


def readme_presets(readme: Path) -> dict[str, list[str]]:
    """The -S overrides of each `dvc exp run -n NAME` line between README's <!-- presets --> markers."""
    block = readme.read_text().split("<!-- presets -->")[1].split("<!-- /presets -->")[0]
    presets = {}
    for line in block.splitlines():
        if line.startswith("dvc exp run"):
            words = shlex.split(line)
            presets[words[words.index("-n") + 1]] = [words[i + 1] for i, w in enumerate(words) if w == "-S"]
    return presets


def preset_params(params_file: Path, overrides: list[str]) -> dict:
    """params.yaml as `dvc exp run -S overrides` makes it, by DVC's own code, on a temporary copy."""
    from dvc.utils.hydra import apply_overrides  # DVC's import is slow; only this function needs it
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "params.yaml"
        copy.write_text(params_file.read_text())
        apply_overrides(copy, overrides)
        return load_params(copy)


def budget_overrides(params_file: Path, overrides: list[str], steps: int) -> list[str]:
    """`overrides` plus pretrain.steps=steps, its milestones scaled from the preset's step count, and an EMA
    that averages over at most the last ~10% of the steps (decay <= 1 - 10 / steps): with 0.999, a run of a
    few hundred steps would score mostly its first weights."""
    settings = params_group(preset_params(params_file, overrides), PretrainSettings, "pretrain")
    extra = [f"pretrain.steps={steps}"]
    if settings.ema_decay > 1 - 10 / steps:
        extra.append(f"pretrain.ema_decay={1 - 10 / steps:.6g}")
    if settings.milestones:
        scaled = [max(1, round(m * steps / settings.steps)) for m in settings.milestones]
        extra.append(f"pretrain.milestones=[{','.join(map(str, scaled))}]")
    return overrides + extra


def run_experiment(name: str, overrides: list[str]) -> float | None:
    """`dvc exp run -n name pretrain -S ...` from the committed params.yaml and dvc.lock; the seconds from
    the start of the pretrain stage to the end, or None when DVC restored it from its run-cache."""
    subprocess.run(["git", "checkout", "--", "params.yaml", "dvc.lock"], check=True)
    subprocess.run(["dvc", "exp", "remove", name], capture_output=True)  # a stale one of the same name
    command = ["dvc", "exp", "run", "-n", name, "pretrain"] + [w for o in overrides for w in ("-S", o)]
    print("$ " + shlex.join(command), flush=True)
    started, cached = None, False
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        sys.stdout.write(line)
        if "Running stage 'pretrain'" in line:
            started = time.monotonic()
        cached |= "Stage 'pretrain' is cached" in line
    if process.wait() != 0:
        raise SystemExit(f"{name}: dvc exp run failed with exit status {process.returncode}")
    return None if cached or started is None else time.monotonic() - started


def flops_per_lr_pixel(model: torch.nn.Module, scale: int, side: int = 24) -> float:
    """Forward FLOPs (convolutions and matmuls) per LR pixel at `scale`, on a side x side RGB input."""
    net = select_scale(model, scale)
    with torch.no_grad():
        return count_flops(lambda: net(torch.rand(1, 3, side, side))) / side**2


def score_model(path: Path, benchmark: Path) -> dict:
    """Parameters, FLOPs per LR pixel at x4 and PSNR/SSIM on every dataset at every scale of the model."""
    model = load_generator(path).eval()
    scores = {dataset: {} for dataset in DATASETS}
    for scale in model_scales(model):
        upscale = model_upscaler(select_scale(model, scale))
        for dataset in DATASETS:
            result = mean_scores(evaluate_dataset(upscale, benchmark / dataset, scale, with_niqe=False, quiet=True))
            scores[dataset][str(scale)] = (round(result["psnr"], 3), round(result["ssim"], 4))
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "flops_per_lr_pixel_x4": round(flops_per_lr_pixel(model, 4)), "scores": scores}


def step_rate(params: dict, repeats: int = 3) -> float:
    """Training steps/s of the pretrain recipe that `params` describe, at x4 on random batches."""
    settings = params_group(params, PretrainSettings, "pretrain")
    runtime, _, _ = start_runtime(replace(params_group(params, Runtime, "runtime"), device="cpu"), seed=0)
    recipe = pretrain.build(settings, CommonSettings(seed=0, scale=4), runtime, data={}, code="bench")
    side = settings.patch_size
    lq = to_device(torch.rand(settings.batch_size, 3, side // 4, side // 4), runtime)  # (B, 3, p/4, p/4)
    hr = to_device(torch.rand(settings.batch_size, 3, side, side), runtime)            # (B, 3, p, p)
    recipe.step(recipe.state, lq, hr)  # warm-up: oneDNN primitives
    seconds = interleaved({"step": lambda: recipe.step(recipe.state, lq, hr)}, repeats)["step"]
    return 1e3 / summary(seconds)["median_ms"]


def print_rates(params_file: Path, presets: dict[str, list[str]]) -> None:
    print(f"{'preset':<14} {'steps/s':>8} {f'0.8 x steps in {BUDGET_MINUTES} min':>22} {'BUDGET':>7}")
    for name, overrides in presets.items():
        rate = step_rate(preset_params(params_file, overrides))
        print(f"{name:<14} {rate:8.2f} {0.8 * rate * 60 * BUDGET_MINUTES:22.0f} {BUDGET[name]:7d}", flush=True)


def cell(scores: dict | None, dataset: str, scale: int) -> str:
    pair = (scores or {}).get(dataset, {}).get(str(scale))
    return f"{pair[0]:.2f} / {pair[1]:.4f}" if pair else ""


def markdown(rows: dict[str, dict]) -> str:
    """One line per preset and scale: ours and the published PSNR / SSIM on each dataset, with the costs."""
    lines = ["| preset | scale | " + " | ".join(f"{d} ours | {d} published" for d in DATASETS) +
             " | parameters | kFLOPs / LR px | steps | pretrain wall |",
             "|---" * (6 + 2 * len(DATASETS)) + "|"]
    for name, row in rows.items():
        for scale in sorted(int(s) for s in row["scores"][DATASETS[0]]):
            published = {d: {str(s): v for s, v in PUBLISHED.get(name, {}).get(d, {}).items()} for d in DATASETS}
            cells = [c for d in DATASETS for c in (cell(row["scores"], d, scale), cell(published, d, scale))]
            wall = f"{row['seconds'] / 60:.1f} min" if row.get("seconds") else "run-cache"
            lines.append(f"| {name} | x{scale} | " + " | ".join(cells) + f" | {row['parameters']:,} | "
                         f"{row['flops_per_lr_pixel_x4'] / 1e3:,.0f} | {row['steps']} | {wall} |")
    return "\n".join(lines)


def run_table(args: argparse.Namespace, presets: dict[str, list[str]]) -> dict[str, dict]:
    """Train and score each preset (keeping the earlier wall time of one DVC restores); rows so far are
    written to --out after each preset, so an interrupted table keeps what it has."""
    rows = json.loads(args.out.read_text())["rows"] if args.out.exists() else {}
    # Every run's -S list from the committed params.yaml, before the first run leaves its own in the workspace.
    plans = {name: budget_overrides(args.params, overrides, BUDGET[name]) for name, overrides in presets.items()}
    for name, overrides in presets.items():
        seconds = run_experiment(f"lineage-{name}", plans[name])
        earlier = rows.get(name, {})
        if seconds is None and earlier.get("steps") == BUDGET[name]:
            seconds = earlier.get("seconds")
        rows[name] = {"steps": BUDGET[name], "seconds": seconds, "overrides": overrides,
                      **score_model(args.model, args.benchmark)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"environment": environment(), "rows": rows}, indent=1) + "\n")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, required=True, help="README.md with the <!-- presets --> block")
    parser.add_argument("--params", type=Path, required=True, help="params.yaml (committed: it is restored)")
    parser.add_argument("--benchmark", type=Path, required=True, help="folder of the benchmark sets (Set5/, Set14/)")
    parser.add_argument("--model", type=Path, required=True, help="the pretrain stage's output (models/psnr.pt)")
    parser.add_argument("--out", type=Path, required=True, help="JSON of the rows (also read: earlier times)")
    parser.add_argument("--presets", nargs="+", help="these presets only (names from the README, or default)")
    parser.add_argument("--rates", action="store_true", help="only time each preset's step; no training")
    args = parser.parse_args()
    presets = {"default": [], **readme_presets(args.readme)}
    unknown = set(args.presets or ()) - set(presets)
    if unknown:
        parser.error(f"--presets: unknown {', '.join(sorted(unknown))}; valid: {', '.join(presets)}")
    presets = {n: o for n, o in presets.items() if not args.presets or n in args.presets}
    if args.rates:
        return print_rates(args.params, presets)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *RESTORED],
                           capture_output=True, text=True, check=True).stdout
    if dirty:
        raise SystemExit(f"uncommitted changes where the runs write; commit or stash them first:\n{dirty}")
    try:
        rows = run_table(args, presets)
    finally:  # the committed pipeline's params, metrics and outputs back in the workspace
        subprocess.run(["git", "checkout", "--", *RESTORED], check=True)
        subprocess.run(["dvc", "checkout", "--quiet"], check=False)
    print(markdown(rows))


if __name__ == "__main__":
    main()
