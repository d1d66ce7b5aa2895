"""The key scores of every experiment at a glance: `make compare` (`python -m srcore.compare [DVC ARGS]`).

`dvc exp show` puts every metric and param in one row per experiment: 172 columns for this pipeline,
truncated on any terminal. This prints the same experiments (`dvc exp show --json` with the arguments
given, e.g. `-A` or `-n 3`), one line per benchmark set, with PSNR / SSIM / NIQE of bicubic, the PSNR
model and the GAN model from metrics/eval.json, as the README's results table writes them. With the
default models it fits 120 columns. Layout of eval.json: {"scale": s, set: {model: {metric: value}}}, where a
set is a dataset at scale s or, for a multi-scale model's other scales, "<dataset> x<other scale>".
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass

EVAL_FILE = "metrics/eval.json"
MODELS = {"bicubic": "bicubic", "psnr": "PSNR model", "gan": "GAN model"}  # eval.json key -> column title
METRICS = (("psnr", "{:.2f}"), ("ssim", "{:.4f}"), ("niqe", "{:.2f}"))
CELL = 22  # "28.43 / 0.8111 / 10.45"
NAME = 24  # longer experiment names are cut with "~"


@dataclass(frozen=True)
class Row:
    """One experiment (or baseline commit, or the workspace) and its metrics/eval.json, {} if it has none."""

    name: str
    scores: dict


def revision_scores(revision: dict, metrics_file: str) -> dict:
    """metrics_file's content in one revision of `dvc exp show --json`, {} when absent or unreadable."""
    data = (revision.get("data") or {}).get("metrics", {}).get(metrics_file, {})
    return data.get("data") or {}


def experiment_rows(shown: list[dict], metrics_file: str = EVAL_FILE) -> list[Row]:
    """The rows of `dvc exp show --json` in its order: each baseline, then its experiments (indented)."""
    rows = []
    for baseline in shown:
        rev = baseline["rev"]  # "workspace", or a commit's sha
        name = baseline.get("name") or (rev if rev == "workspace" else rev[:7])
        rows.append(Row(name, revision_scores(baseline, metrics_file)))
        for experiment in baseline.get("experiments") or []:
            revision = experiment["revs"][0]
            name = experiment.get("name") or revision.get("name") or revision["rev"][:7]
            rows.append(Row(f"  {name}", revision_scores(revision, metrics_file)))
    return rows


def benchmark_sets(rows: list[Row]) -> list[str]:
    """Set names in first-seen order: the keys of eval.json whose values are {model: {metric: value}}."""
    names: list[str] = []
    for row in rows:
        names += [key for key, value in row.scores.items() if isinstance(value, dict) and key not in names]
    return names


def cell(scores: dict | None) -> str:
    """'PSNR / SSIM / NIQE' of one model on one set; '-' for each metric it lacks."""
    scores = scores or {}
    return " / ".join(form.format(scores[key]) if isinstance(scores.get(key), (int, float)) else "-"
                      for key, form in METRICS)


def fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "~"


def table(rows: list[Row], models: dict[str, str] = MODELS) -> str:
    """The comparison as text: a header, then per experiment one line per benchmark set."""
    sets = benchmark_sets(rows)
    set_width = max([len(s) for s in sets] + [3]) + 4  # room for " x4"
    header = f"{'experiment':<{NAME}}  {'set':<{set_width}}" + "".join(f"  {title:<{CELL}}" for title in
                                                                      models.values())
    units = f"{'':<{NAME}}  {'':<{set_width}}" + f"  {'PSNR  / SSIM   / NIQE':<{CELL}}" * len(models)
    lines = [header.rstrip(), units.rstrip()]
    for row in rows:
        if not sets or not any(s in row.scores for s in sets):
            lines.append(f"{fit(row.name, NAME):<{NAME}}  (no {EVAL_FILE})")
            continue
        for index, name in enumerate(s for s in sets if s in row.scores):
            label = fit(row.name, NAME) if index == 0 else ""
            # A multi-scale model's other scales come as sets named "<dataset> x<s>" (srcore.scoreboard).
            scale = f" x{row.scores['scale']}" if "scale" in row.scores and not re.search(r" x\d+$", name) else ""
            cells = "".join(f"  {cell(row.scores[name].get(model)):<{CELL}}" for model in models)
            lines.append(f"{label:<{NAME}}  {name + scale:<{set_width}}{cells}".rstrip())
    return "\n".join(lines)


def exp_show(dvc_args: list[str]) -> list[dict]:
    """`dvc exp show --json DVC_ARGS`, run by this interpreter's dvc in the current directory."""
    command = [sys.executable, "-m", "dvc", "exp", "show", "--json", *dvc_args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"`dvc exp show --json {' '.join(dvc_args)}` failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m srcore.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Other arguments go to `dvc exp show` (e.g. -A, --rev REV, -n 3).")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="eval.json model keys to show, comma-separated (default: %(default)s); "
                             "e.g. add alpha=0.40 for an interpolated model: each adds 24 columns")
    args, dvc_args = parser.parse_known_args(argv)
    models = {key: MODELS.get(key, key) for key in args.models.split(",") if key}
    if not models:
        parser.error(f"--models {args.models!r} names no model")
    print(table(experiment_rows(exp_show(dvc_args)), models))


if __name__ == "__main__":
    main()
