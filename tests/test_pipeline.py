"""End to end: `dvc repro` of the real dvc.yaml on tiny params in a temp copy, then what a params edit re-runs.

The copy holds the stage scripts, the library, a handful of training images and Set5; params are shrunk so
the whole pipeline takes seconds. Stages run with this interpreter (its folder first on PATH).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from srcore.checkpoint import load_checkpoint
from srcore.weights import load_generator

ROOT = Path(__file__).resolve().parents[1]
TRAIN_IMAGES = {"T91": ["t1.png", "t2.png", "t3.png"], "BSDS200": ["100075.jpg", "100080.jpg"]}


def tiny_params() -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["prepare"].update(val_images=1, val_patch_size=96)
    params["pretrain"].update(generator_args={"num_feat": 8, "num_block": 1, "global_residual": True},
                              steps=12, batch_size=4, patch_size=48, log_every=4, val_every=6, ckpt_every=6)
    params["gan"].update(steps=4, batch_size=2, patch_size=48, milestones=[2], log_every=2, val_every=2, ckpt_every=2,
                         discriminator_args={"num_feat": 4, "num_dense": 8})
    params["interpolate"].update(alphas=[0.5])
    params["evaluate"].update(datasets=["Set5"], crop_size=48)
    params["runtime"].update(threads=1)
    return params


def dvc(workspace: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=workspace, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def edit_params(workspace: Path, group: str, **values) -> None:
    path = workspace / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[group].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def copy_project(root: Path) -> Path:
    """The stage scripts, the library, dvc.yaml, tiny params and a few real images, in `root`."""
    ignore = shutil.ignore_patterns("__pycache__")
    for folder in ("stages", "srcore", "kernels"):
        shutil.copytree(ROOT / folder, root / folder, ignore=ignore)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    del stages["stages"]["bench"]  # the kernel benchmark compiles for GPUs for minutes: not part of these tests
    (root / "dvc.yaml").write_text(yaml.safe_dump(stages, sort_keys=False))
    shutil.copytree(ROOT / "data" / "benchmark" / "Set5" / "HR", root / "data" / "benchmark" / "Set5" / "HR")
    for folder, names in TRAIN_IMAGES.items():
        (root / "data" / "raw" / "train" / folder).mkdir(parents=True)
        for name in names:
            shutil.copy(ROOT / "data" / "raw" / "train" / folder / name, root / "data" / "raw" / "train" / folder)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    return root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("pipeline"))
    dvc(root, "init", "--no-scm", "-q")
    return root


@pytest.fixture(scope="module")
def first_run(workspace: Path) -> str:
    return dvc(workspace, "repro")


def test_repro_runs_the_stages_and_writes_the_declared_outputs(workspace: Path, first_run: str):
    assert stages_run(first_run) == {"prepare", "pretrain", "train_gan", "interpolate", "evaluate", "release"}
    scores = json.loads((workspace / "metrics" / "eval.json").read_text())
    assert scores["scale"] == 4 and list(scores["Set5"]) == ["bicubic", "psnr", "alpha=0.50", "gan", "HR"]
    for model in ("bicubic", "psnr", "alpha=0.50", "gan"):
        assert set(scores["Set5"][model]) == {"psnr", "ssim", "niqe"}
    assert set(scores["Set5"]["HR"]) == {"niqe"}
    assert abs(scores["Set5"]["bicubic"]["psnr"] - 28.429) < 0.01  # the protocol's baseline, as published
    for path in ("psnr.pt", "gan.pt", "interp/alpha_0.50.pt"):
        model = load_generator(workspace / "models" / path, expect_scale=4)
        assert model.name == "edsr" and model.arch_args["num_feat"] == 8
    (state_file,) = (workspace / ".runs" / "pretrain").glob("*/checkpoint.pt")  # resumable state, not an output
    state = load_checkpoint(state_file)
    assert state["step"] == 12 and {"optimizers", "schedulers", "ema", "rng", "run"} <= set(state)
    live = json.loads((workspace / "metrics" / "pretrain" / "metrics.json").read_text())
    assert live["step"] == 12 and "psnr" in live["val"]
    assert (workspace / "metrics" / "pretrain" / "plots" / "metrics" / "train" / "loss.tsv").is_file()
    assert (workspace / "metrics" / "pretrain" / "plots" / "images" / "val" / "sample.png").is_file()
    (gan_file,) = (workspace / ".runs" / "train_gan").glob("*/checkpoint.pt")
    gan = load_checkpoint(gan_file)
    assert gan["step"] == 4 and set(gan["networks"]) == set(gan["optimizers"]) - {"generator"} == {"discriminator"}
    for name in ("psnr.png", "ssim.png", "niqe.png", "crops/Set5.png", "perception_distortion/Set5.png"):
        assert (workspace / "plots" / "evaluate" / name).is_file(), name
    for name in ("psnr", "gan"):  # the shipped models are this run's, with its scores
        shipped = load_generator(workspace / "srcore" / "assets" / "models" / f"{name}.safetensors")
        assert shipped.arch_args["num_feat"] == 8


def test_same_params_and_seed_give_identical_files(workspace: Path, first_run: str, tmp_path: Path):
    """Determinism on CPU: prepare and evaluate, run again from dvc.yaml's commands in a fresh copy (no DVC,
    no cache; the first run's models), give its HDF5 files byte for byte and the same metrics/eval.json.
    (Training's bit-for-bit reproducibility is tested by the resume tests of test_engine and test_gan.)"""
    second = copy_project(tmp_path)
    shutil.copytree(workspace / "models", second / "models")
    stages = yaml.safe_load((second / "dvc.yaml").read_text())["stages"]
    for name in ("prepare", "evaluate"):
        params = yaml.safe_load((second / "params.yaml").read_text())
        cmd = re.sub(r"\$\{(\w+)\.(\w+)\}", lambda m: str(params[m.group(1)][m.group(2)]), stages[name]["cmd"])
        command = shlex.split(cmd)
        assert command[0] == "python", command
        done = subprocess.run([sys.executable, *command[1:]], cwd=second, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"{name} failed:\n{done.stderr}"
    for path in ("data/prepared/train.h5", "data/prepared/val.h5", "metrics/eval.json"):
        assert (second / path).read_bytes() == (workspace / path).read_bytes(), path


def test_params_edits_rerun_only_the_stages_they_affect(workspace: Path, first_run: str):
    assert stages_run(dvc(workspace, "repro", "evaluate")) == set()
    edit_params(workspace, "evaluate", crop_size=32)
    assert stages_run(dvc(workspace, "repro", "evaluate")) == {"evaluate"}
    edit_params(workspace, "interpolate", alphas=[0.25, 0.75])
    assert stages_run(dvc(workspace, "repro", "evaluate")) == {"interpolate", "evaluate"}
    assert sorted(p.name for p in (workspace / "models" / "interp").iterdir()) == ["alpha_0.25.pt", "alpha_0.75.pt"]
    edit_params(workspace, "gan", lr_g=2e-4)
    assert stages_run(dvc(workspace, "repro", "evaluate")) == {"train_gan", "interpolate", "evaluate"}
    edit_params(workspace, "pretrain", lr=1e-3)
    assert stages_run(dvc(workspace, "repro", "evaluate")) == {"pretrain", "train_gan", "interpolate", "evaluate"}


def git(workspace: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=workspace, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"git {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """The tiny project as a user has it: a git repository with DVC, its first commit made."""
    root = copy_project(tmp_path_factory.mktemp("repo"))
    for name in (".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, root)
    git(root, "init", "-q")
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "user.name", "test")
    dvc(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "tiny project")
    return root


@pytest.fixture(scope="module")
def two_experiments(repo: Path) -> dict[str, str]:
    """`dvc exp run` twice (an L1 and an MSE pretrain), as a user compares two settings."""
    return {name: dvc(repo, "exp", "run", "-n", name, "-S", f"pretrain.loss={loss}")
            for name, loss in (("tiny-l1", "l1"), ("tiny-mse", "mse"))}


def test_applying_an_experiment_that_ran_restores_it_without_training(repo: Path, two_experiments):
    assert {"pretrain", "train_gan"} <= stages_run(two_experiments["tiny-mse"])  # each experiment trained once
    dvc(repo, "exp", "apply", "tiny-l1")
    assert "up to date" in dvc(repo, "status")  # the models came back from the cache, nothing is stale
    assert stages_run(dvc(repo, "repro")) == set()
    assert yaml.safe_load((repo / "params.yaml").read_text())["pretrain"]["loss"] == "l1"


def test_a_parameter_set_that_already_ran_is_restored_from_the_run_cache(repo: Path, two_experiments):
    dvc(repo, "exp", "apply", "tiny-l1")  # the workspace holds the L1 run; MSE ran before, as tiny-mse
    output = dvc(repo, "exp", "run", "-n", "tiny-mse-again", "-S", "pretrain.loss=mse")
    assert not {"pretrain", "train_gan"} & stages_run(output), output
    for stage in ("pretrain", "train_gan"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in output, output


def test_results_travel_through_a_remote(repo: Path, two_experiments, tmp_path: Path):
    """dvc push from one clone, dvc pull in a second: the second has every output and runs nothing."""
    dvc(repo, "exp", "apply", "tiny-l1")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tiny-l1 results")
    dvc(repo, "remote", "add", "-d", "shared", str(tmp_path / "remote"))
    git(repo, "commit", "-qam", "a DVC remote")
    dvc(repo, "push")
    second = tmp_path / "second"
    git(tmp_path, "clone", "-q", str(repo), str(second))
    dvc(second, "pull")
    assert "up to date" in dvc(second, "status")
    assert stages_run(dvc(second, "repro")) == set()
    assert (second / "models" / "psnr.pt").read_bytes() == (repo / "models" / "psnr.pt").read_bytes()
