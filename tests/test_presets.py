"""The README's preset `dvc exp run -S` lines: each applies cleanly to params.yaml and builds the paper's network."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
import torch
from dvc.utils.hydra import apply_overrides

from srcore.bench.lineage import BUDGET, PUBLISHED, budget_overrides, preset_params, readme_presets
from srcore.config import from_dict
from srcore.models import build_generator
from srcore.settings import CommonSettings, PrepareSettings, PretrainSettings

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"  # what `dvc exp run -S` applies to: srcore.bench.lineage.preset_params, DVC's own code
# Published sizes at x4 (parameters, and how far ours may be: the published rounding, or the biases a count
# of weights leaves out): SRCNN 9-5-5 (57,184 weights; + 97 biases), VDSR (665K weights; + 1,217 biases),
# SRGAN's SRResNet, EDSR-baseline, baseline MDSR (EDSR paper's Table 1: 3.2M), ESRGAN's RRDBNet.
PAPER_PARAMETERS = {"srcnn": (57_184, 100), "vdsr": (665e3, 1e3), "srresnet": (1.55e6, 7.75e3),
                    "edsr-baseline": (1.52e6, 7.6e3), "mdsr-baseline": (3.2e6, 0.05e6), "rrdb-psnr": (16.7e6, 83.5e3)}


def preset_commands() -> dict[str, list[str]]:
    return readme_presets(ROOT / "README.md")


def test_readme_lists_the_published_recipes():
    assert set(preset_commands()) == set(PAPER_PARAMETERS)


@pytest.mark.parametrize("preset", list(PAPER_PARAMETERS))
def test_preset_gives_valid_params_and_the_papers_network(preset: str):
    params = preset_params(PARAMS, preset_commands()[preset])
    settings = from_dict(PretrainSettings, params["pretrain"], "pretrain")
    scale = from_dict(CommonSettings, params["common"], "common").scale
    with torch.device("meta"):  # shapes only
        model = build_generator(settings.generator, scale=scale, **settings.generator_args)
    count = sum(p.numel() for p in model.parameters())
    published, tolerance = PAPER_PARAMETERS[preset]
    assert abs(count - published) <= tolerance, count
    assert all(m < settings.steps for m in settings.milestones)
    prepare = from_dict(PrepareSettings, params["prepare"], "prepare")
    prepare.check_scale(scale)  # a multi-scale model's data has the LR of each of its scales, no more
    assert set(settings.generator_args.get("scales", [scale])) == {scale, *prepare.more_scales}


def test_lineage_table_has_a_budget_and_published_numbers_for_every_preset():
    assert set(BUDGET) == set(PAPER_PARAMETERS) | {"default"}
    assert set(PUBLISHED) == set(PAPER_PARAMETERS) | {"bicubic"}
    for scores in PUBLISHED.values():  # Set5 x4 is the column every published model has
        assert 28 < scores["Set5"][4][0] < 33 and 0.8 < scores["Set5"][4][1] < 0.91


@pytest.mark.parametrize("preset", ["vdsr", "rrdb-psnr", "srcnn"])
def test_lineage_budget_scales_the_presets_milestones(preset: str):
    overrides = preset_commands()[preset]
    full = from_dict(PretrainSettings, preset_params(PARAMS, overrides)["pretrain"], "pretrain")
    budget = budget_overrides(ROOT / "params.yaml", overrides, 300)
    settings = from_dict(PretrainSettings, preset_params(PARAMS, budget)["pretrain"], "pretrain")
    assert settings.steps == 300
    assert list(settings.milestones) == [round(m * 300 / full.steps) for m in full.milestones]
    assert settings.generator == full.generator and settings.lr == full.lr
    assert abs(settings.ema_decay - (1 - 10 / 300)) < 1e-6 < full.ema_decay - settings.ema_decay


def test_lineage_plans_every_run_from_the_committed_params(tmp_path: Path, monkeypatch):
    """`dvc exp run` leaves each run's params.yaml in the workspace; the next preset's -S list must still be
    made from the committed one (a VDSR run removes the keys SRResNet's lines set)."""
    from srcore.bench import lineage
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    ran = {}

    def fake_run(name: str, overrides: list[str]) -> float:
        shutil.copy(ROOT / "params.yaml", params)  # run_experiment's `git checkout -- params.yaml`
        apply_overrides(params, overrides)  # and what `dvc exp run -S` leaves in the workspace
        ran[name] = overrides
        return 1.0

    monkeypatch.setattr(lineage, "run_experiment", fake_run)
    monkeypatch.setattr(lineage, "score_model", lambda model, benchmark: {"scores": {}})
    presets = {name: preset_commands()[name] for name in ("vdsr", "srresnet")}
    args = argparse.Namespace(params=params, out=tmp_path / "lineage.json", model=None, benchmark=None)
    rows = lineage.run_table(args, presets)
    assert set(rows) == {"vdsr", "srresnet"}
    assert f"pretrain.steps={BUDGET['srresnet']}" in ran["lineage-srresnet"]
