"""dvc.yaml's code dependencies cannot drift: each stage lists exactly the import closure of its script, and a
training run's code fingerprint hashes that same closure (so editing the CLI neither re-runs nor refuses
to resume a training stage, while editing anything it runs does both)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from srcore.imports import code_fingerprint, import_closure

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def resolved(text: str) -> str:
    """dvc.yaml's ${group.key} templates filled in from params.yaml."""
    def value(match: re.Match) -> str:
        group, key = match.group(1).split(".")
        return str(PARAMS[group][key])
    return re.sub(r"\$\{([\w.]+)\}", value, text)
CODE = ("srcore/", "kernels/", "stages/")


def script_of(command: str) -> Path:
    (script,) = re.findall(r"stages/\w+\.py", resolved(command))
    return ROOT / script


@pytest.mark.parametrize("stage", list(STAGES))
def test_code_deps_are_exactly_the_import_closure_of_the_stage_script(stage: str):
    spec = STAGES[stage]
    listed = {dep for dep in spec["deps"] if dep.startswith(CODE) and dep.endswith(".py")}
    closure = {path.as_posix() for path in import_closure(script_of(spec["cmd"]), ROOT)}
    assert listed == closure, (f"{stage}: dvc.yaml misses {sorted(closure - listed)}; "
                               f"lists what the stage does not import: {sorted(listed - closure)}")
    for dep in map(resolved, spec["deps"]):
        assert (ROOT / dep).exists() or dep.startswith(("data/prepared/", "models/")), f"{stage}: no {dep}"
        if dep.startswith(CODE):  # a folder of code would hide which files the stage runs
            assert not (ROOT / dep).is_dir(), f"{stage}: {dep} is a folder"


def test_lazy_imports_inside_functions_are_part_of_the_closure():
    closure = {p.as_posix() for p in import_closure(ROOT / "stages" / "pretrain.py", ROOT)}
    assert "kernels/conv_block.py" in closure  # srcore.ops imports the Triton kernels inside its functions
    assert "srcore/cli.py" not in closure and not any(p.startswith("srcore/bench/") for p in closure)


def test_the_run_fingerprint_hashes_the_closure_and_nothing_else(tmp_path: Path):
    for folder in ("srcore", "kernels", "stages"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    script = tmp_path / "stages" / "pretrain.py"
    before = code_fingerprint(script)
    for outside in ("srcore/cli.py", "srcore/bench/train.py", "stages/evaluate.py"):
        (tmp_path / outside).write_text((tmp_path / outside).read_text() + "\n# edited\n")
    assert code_fingerprint(script) == before
    (tmp_path / "srcore" / "models.py").write_text((tmp_path / "srcore" / "models.py").read_text() + "\n# edited\n")
    assert code_fingerprint(script) != before


def test_the_training_images_and_benchmark_sets_come_from_params():
    """`dvc exp run -S data.train=my/photos` must change both what prepare reads and what it depends on."""
    for stage, key, option in (("prepare", "train", "--train"), ("evaluate", "benchmark", "--benchmark")):
        assert f"{option} ${{data.{key}}}" in STAGES[stage]["cmd"] and f"${{data.{key}}}" in STAGES[stage]["deps"]
