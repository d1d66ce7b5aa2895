"""`make compare`: the key scores of every experiment within 120 columns (srcore.compare).

Runs on the repository's committed metrics/eval.json; the end-to-end test runs the real `dvc exp show`.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from srcore.compare import MODELS, Row, experiment_rows, table

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = json.loads((ROOT / "metrics" / "eval.json").read_text())
KEY_MODELS = ("bicubic", "psnr", "gan")


def key_figures(scores: dict) -> dict[str, list[str]]:
    """Per benchmark set, 'PSNR / SSIM / NIQE' of bicubic, the PSNR model and the GAN, rounded as shown."""
    sets = [name for name, value in scores.items() if isinstance(value, dict)]
    return {s: [f"{scores[s][m]['psnr']:.2f} / {scores[s][m]['ssim']:.4f} / {scores[s][m]['niqe']:.2f}"
                for m in KEY_MODELS] for s in sets}


def assert_shows(text: str, name: str, scores: dict) -> None:
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(name))
    for offset, (benchmark, cells) in enumerate(key_figures(scores).items()):
        line = lines[first + offset]
        assert f"{benchmark} x{scores['scale']}" in line, line
        positions = [line.find(cell) for cell in cells]
        assert -1 not in positions and positions == sorted(positions), f"{cells} not in order in {line!r}"


def test_committed_scores_fit_120_columns():
    text = table([Row("workspace", COMMITTED), Row("  a-rather-long-experiment-name-x", COMMITTED)])
    assert max(len(line) for line in text.splitlines()) <= 120, text
    assert [title in text.splitlines()[0] for title in MODELS.values()] == [True] * 3
    assert_shows(text, "workspace", COMMITTED)
    assert "  a-rather-long-experim~ " in text  # cut to 24 characters, the cut marked


def test_rows_follow_dvc_exp_show_json():
    # The shape `dvc exp show --json` prints (DVC 3): baselines, each with its experiments' revisions.
    def revision(rev: str, name: str | None, scores: dict | None) -> dict:
        metrics = {} if scores is None else {"metrics/eval.json": {"data": scores}}
        return {"rev": rev, "name": name, "data": {"rev": rev, "metrics": metrics}}

    shown = [{**revision("workspace", None, COMMITTED), "experiments": None},
             {**revision("a" * 40, "main", COMMITTED),
              "experiments": [{"name": "tiny-l1", "revs": [revision("b" * 40, "tiny-l1", {"scale": 4})]},
                              {"name": None, "revs": [revision("c" * 40, None, None)]}]}]
    rows = experiment_rows(shown)
    assert [row.name for row in rows] == ["workspace", "main", "  tiny-l1", "  ccccccc"]
    assert rows[0].scores == COMMITTED and rows[3].scores == {}
    text = table(rows)
    assert "  tiny-l1                 (no metrics/eval.json)" in text  # scale only: it never scored a set


def test_missing_model_or_metric_prints_dashes():
    scores = {"scale": 2, "Set5": {"bicubic": {"psnr": 33.6734, "ssim": 0.93031}, "gan": {}}}
    line = table([Row("x", scores)]).splitlines()[2]
    assert line.split()[:3] == ["x", "Set5", "x2"]
    assert "33.67 / 0.9303 / -" in line and line.count("- / - / -") == 2  # no NIQE; no psnr model, empty gan


def test_sets_at_another_scale_keep_their_own_scale():
    scores = {"scale": 4, "Set5": {"bicubic": {"psnr": 28.43}}, "Set5 x2": {"bicubic": {"psnr": 33.67}}}
    lines = table([Row("x", scores)]).splitlines()[2:]
    assert lines[0].split()[:3] == ["x", "Set5", "x4"] and lines[1].split()[:2] == ["Set5", "x2"]
    assert "33.67" in lines[1] and "x4" not in lines[1]


def test_make_compare_runs_dvc_exp_show_on_the_repository():
    done = subprocess.run([sys.executable, "-m", "srcore.compare"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 120, done.stdout
    assert_shows(done.stdout, "workspace", COMMITTED)
