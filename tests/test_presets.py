"""The README's preset `dvc exp run -S` lines: each applies cleanly to params.yaml and builds the paper's network."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import torch
import yaml

from srcore.config import from_dict, parse_yaml
from srcore.models import build_generator
from srcore.settings import CommonSettings, PretrainSettings

ROOT = Path(__file__).resolve().parents[1]
# Published sizes at x4: SRGAN's SRResNet, EDSR-baseline, ESRGAN's RRDBNet.
PAPER_PARAMETERS = {"srresnet": 1.55e6, "edsr-baseline": 1.52e6, "rrdb-psnr": 16.7e6}


def preset_commands() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- presets -->")[1].split("<!-- /presets -->")[0]
    commands = {}
    for line in block.splitlines():
        if line.startswith("dvc exp run"):
            words = shlex.split(line)
            commands[words[words.index("-n") + 1]] = [words[i + 1] for i, w in enumerate(words) if w == "-S"]
    return commands


def apply_overrides(params: dict, overrides: list[str]) -> dict:
    """What `dvc exp run -S key.path=value` does to params.yaml: values parsed as YAML, keys must exist."""
    for override in overrides:
        key, value = override.split("=", 1)
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        assert leaf in node, f"{key} is not in params.yaml (dvc exp run -S would need '+')"
        node[leaf] = parse_yaml(value)
    return params


def test_readme_lists_the_three_published_recipes():
    assert set(preset_commands()) == set(PAPER_PARAMETERS)


@pytest.mark.parametrize("preset", list(PAPER_PARAMETERS))
def test_preset_gives_valid_params_and_the_papers_network(preset: str):
    params = apply_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()), preset_commands()[preset])
    settings = from_dict(PretrainSettings, params["pretrain"], "pretrain")
    scale = from_dict(CommonSettings, params["common"], "common").scale
    with torch.device("meta"):  # shapes only
        model = build_generator(settings.generator, scale=scale, **settings.generator_args)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - PAPER_PARAMETERS[preset]) / PAPER_PARAMETERS[preset] < 0.005, count
    assert all(m < settings.steps for m in settings.milestones)
