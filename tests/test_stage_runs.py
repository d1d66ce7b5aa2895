"""The training stages as processes: killed with SIGKILL and re-run, data-parallel under torchrun, on two "nodes".

Each test runs the real stage scripts (`python stages/pretrain.py ...`, `torchrun ... stages/pretrain.py ...`)
on random crops of two T91 images (validated on tiles of a third), with a model of a few hundred weights, in fp32 on one thread, so runs
are deterministic and take seconds.
"""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from srcore.checkpoint import load_checkpoint
from srcore.config import load_params, merged
from srcore.distributed import Dist, check_batch_size
from srcore.models import build_generator
from srcore.patches import write_images

ROOT = Path(__file__).resolve().parents[1]
T91 = ROOT / "data" / "raw" / "train" / "T91"
PARAMS = merged(load_params(ROOT / "params.yaml"), {
    "common": {"seed": 3, "scale": 2},
    "runtime": {"device": "cpu", "precision": "fp32", "channels_last": False, "kernels": "torch", "threads": 1},
    "pretrain": {"generator": "edsr", "generator_args": {"num_feat": 8, "num_block": 1}, "steps": 60,
                 "batch_size": 4, "patch_size": 16, "log_every": 1, "val_every": 30, "ckpt_every": 4},
    "gan": {"steps": 6, "batch_size": 4, "patch_size": 16, "milestones": [3], "log_every": 1, "val_every": 3,
            "ckpt_every": 3,
            "discriminator_args": {"num_feat": 4, "spectral_norm": True}},
})
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


@pytest.fixture(scope="module")
def patches(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("patches")
    images = sorted(T91.glob("*.png"))[:3]
    write_images(images[:2], folder / "train.h5", scale=2, seed=3)
    write_images(images[2:], folder / "val.h5", scale=2, seed=3, tile=32)
    return folder


def stage_command(stage: str, run: Path, patches: Path, params: dict, launcher: list[str]) -> list[str]:
    run.mkdir(parents=True, exist_ok=True)
    (run / "params.yaml").write_text(yaml.safe_dump(params))
    command = [*launcher, str(ROOT / "stages" / f"{stage}.py"), "--params", str(run / "params.yaml"),
               "--train", str(patches / "train.h5"), "--val", str(patches / "val.h5"),
               "--runs", str(run / "runs"), "--out", str(run / f"{stage}.pt"),
               "--live", str(run / "live" / stage)]
    return command + (["--init", str(run / "pretrain.pt")] if stage == "train_gan" else [])


def run_stage(stage: str, run: Path, patches: Path, params: dict = PARAMS, launcher: list[str] = (sys.executable,)
              ) -> str:
    done = subprocess.run(stage_command(stage, run, patches, params, list(launcher)), capture_output=True,
                          text=True, timeout=240, cwd=run)
    assert done.returncode == 0, f"{stage} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def loss_curve(run: Path, stage: str, name: str) -> list[float]:
    tsv = run / "live" / stage / "plots" / "metrics" / name
    return [float(line.split("\t")[1]) for line in tsv.read_text().splitlines()[1:]]


def weights(path: Path, key: str = "model") -> dict[str, torch.Tensor]:
    return load_checkpoint(path)[key]


def state_file(run: Path, stage: str, name: str = "checkpoint.pt") -> Path:
    """A file of the one run folder a stage made under run/runs (srcore.runs.RunStore)."""
    found = list((run / "runs" / stage).glob(f"*/{name}"))
    assert len(found) == 1, found
    return found[0]


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def kill_at_a_random_step(stage: str, run: Path, patches: Path, params: dict, launcher: list[str],
                          steps: range) -> tuple[int, int]:
    """Start a stage, SIGKILL its process group once it has logged a random step in `steps`; return that
    step and the step of the checkpoint it left."""
    kill_after = random.Random().choice(steps)
    process = subprocess.Popen(stage_command(stage, run, patches, params, launcher), cwd=run,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    loss_tsvs = run / "runs" / stage  # the run's own logs while it trains (published when it ends)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        tsv = next(loss_tsvs.glob("*/live/plots/metrics/train/loss.tsv"), None)
        if tsv is not None and len(tsv.read_text().splitlines()) > kill_after:
            for pid in [process.pid, *descendants(process.pid)]:
                os.kill(pid, signal.SIGKILL)  # torchrun's workers run in sessions of their own: kill each
            break
        time.sleep(0.005)
    assert process.wait() == -signal.SIGKILL, f"the run ended before it was killed at step {kill_after}"
    return kill_after, load_checkpoint(state_file(run, stage))["step"]


def assert_same_weights(a: Path, b: Path, keys: tuple[str, ...] = ("model",), note: object = "") -> None:
    for key in keys:
        for name, tensor in weights(a, key).items():
            assert torch.equal(tensor, weights(b, key)[name]), (a, key, name, note)


def test_sigkill_at_a_random_step_then_rerun_gives_the_uninterrupted_weights(patches: Path, tmp_path: Path):
    params = merged(PARAMS, {"pretrain": {"steps": 120, "val_every": 60, "ckpt_every": 10}})
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run_stage("pretrain", straight, patches, params)
    kill_after, at_kill = kill_at_a_random_step("pretrain", killed, patches, params, [sys.executable], range(15, 100))
    assert 10 <= at_kill < 120 and at_kill % 10 == 0, (kill_after, at_kill)
    assert not (killed / "pretrain.pt").exists()
    output = run_stage("pretrain", killed, patches, params)
    assert f"resuming from step {at_kill}" in output, (kill_after, output)
    assert_same_weights(state_file(straight, "pretrain"), state_file(killed, "pretrain"), ("model", "ema"), kill_after)
    assert_same_weights(straight / "pretrain.pt", killed / "pretrain.pt")
    curve = loss_curve(killed, "pretrain", "train/loss.tsv")
    assert curve == loss_curve(straight, "pretrain", "train/loss.tsv")  # no step twice, none lost


@pytest.fixture(scope="module")
def one_and_two_processes(patches: Path, tmp_path_factory) -> tuple[Path, Path]:
    """pretrain then train_gan, once as one process and once as two under torchrun, same global batch."""
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    for stage in ("pretrain", "train_gan"):
        run_stage(stage, one, patches)
        run_stage(stage, two, patches, launcher=TORCHRUN)
    return one, two


@pytest.mark.parametrize("stage, curve", [("pretrain", "train/loss.tsv"), ("train_gan", "g/total.tsv"),
                                          ("train_gan", "d/loss.tsv")])
def test_two_processes_follow_the_one_process_loss_curve(one_and_two_processes, stage: str, curve: str):
    one, two = one_and_two_processes
    single, data_parallel = loss_curve(one, stage, curve), loss_curve(two, stage, curve)
    assert len(single) == PARAMS["gan" if stage == "train_gan" else stage]["steps"] and len(data_parallel) == len(single)
    # Same samples, gradients averaged over the two halves: equal up to float summation order.
    torch.testing.assert_close(torch.tensor(data_parallel), torch.tensor(single), rtol=1e-4, atol=1e-6)
    assert single[0] != single[-1]  # the curve moves: training happened


def test_two_processes_end_at_the_one_process_weights_and_only_rank_0_writes(one_and_two_processes):
    one, two = one_and_two_processes
    for stage in ("pretrain", "train_gan"):
        for name, tensor in weights(one / f"{stage}.pt").items():
            torch.testing.assert_close(weights(two / f"{stage}.pt")[name], tensor, rtol=1e-3, atol=1e-5)
    # One writer: each curve has each step once (two writers would log every step twice).
    steps = [line.split("\t")[0] for line in (two / "live" / "pretrain" / "plots" / "metrics" / "train" /
                                              "loss.tsv").read_text().splitlines()[1:]]
    assert steps == [str(s) for s in range(1, 61)]
    model = build_generator("edsr", scale=2, num_feat=8, num_block=1)
    model.load_state_dict(weights(two / "pretrain.pt"))  # a plain state dict, no DDP "module." prefix


def test_two_processes_killed_and_rerun_end_at_the_uninterrupted_weights(one_and_two_processes, patches: Path,
                                                                          tmp_path: Path):
    _, two = one_and_two_processes
    kill_after, at_kill = kill_at_a_random_step("pretrain", tmp_path, patches, PARAMS, TORCHRUN, range(8, 45))
    output = run_stage("pretrain", tmp_path, patches, launcher=TORCHRUN)
    assert output.count(f"resuming from step {at_kill}") == 1, (kill_after, output)  # said by rank 0 alone
    assert load_checkpoint(state_file(tmp_path, "pretrain"))["run"]["runtime"]["world"] == 2
    assert_same_weights(state_file(two, "pretrain"), state_file(tmp_path, "pretrain"), ("model", "ema"), kill_after)


def test_a_diverging_stage_stops_with_one_line_naming_the_step_and_keeps_its_checkpoint(patches: Path, tmp_path: Path):
    params = merged(PARAMS, {"pretrain": {"lr": 1e30, "ckpt_every": 1}})  # weights ~1e30 after a step
    done = subprocess.run(stage_command("pretrain", tmp_path, patches, params, [sys.executable]), capture_output=True,
                          text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("pretrain: error: pretrain diverged at step 1: train/loss = "), done.stderr
    assert last.endswith(f"the last good checkpoint is kept: {state_file(tmp_path, 'pretrain')}")
    assert "Traceback" not in done.stderr
    assert load_checkpoint(state_file(tmp_path, "pretrain"))["step"] == 1 and not (tmp_path / "pretrain.pt").exists()


def test_a_batch_that_does_not_split_over_the_processes_is_refused():
    check_batch_size(6, Dist(rank=1, world=3), "pretrain")
    with pytest.raises(ValueError, match="pretrain.batch_size 5 is the global batch; it must split evenly over the 2"):
        check_batch_size(5, Dist(rank=0, world=2), "pretrain")


# ---- two machines: two torchrun launchers meeting at a c10d rendezvous on 127.0.0.1 ----

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(port: int) -> list[str]:
    """The launcher each "machine" runs: one process per node, two nodes, rendezvous at 127.0.0.1:port."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=srgan-test"]


def start_nodes(stage: str, folders: tuple[Path, Path], patches: Path, port: int) -> list[subprocess.Popen]:
    """Node a and node b, each in its own folder (the same folder: shared storage), each in its own session."""
    return [subprocess.Popen(stage_command(stage, folder, patches, PARAMS, two_nodes(port)), cwd=folder, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            for folder in folders]


def finish(nodes: list[subprocess.Popen]) -> list[str]:
    try:
        outputs = [node.communicate(timeout=240)[0] for node in nodes]
    except subprocess.TimeoutExpired:  # a hung job must not outlive the test
        for node in nodes:
            for pid in [node.pid, *descendants(node.pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        raise
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(outputs)
    return outputs


@pytest.fixture(scope="module")
def shared_storage_nodes(patches: Path, tmp_path_factory) -> tuple[Path, list[str]]:
    """pretrain on two nodes that share one project folder."""
    folder = tmp_path_factory.mktemp("shared")
    return folder, finish(start_nodes("pretrain", (folder, folder), patches, free_port()))


def test_two_nodes_follow_the_one_process_curve_and_write_one_checkpoint(shared_storage_nodes, one_and_two_processes):
    folder, outputs = shared_storage_nodes
    one, _ = one_and_two_processes
    single, nodes = loss_curve(one, "pretrain", "train/loss.tsv"), loss_curve(folder, "pretrain", "train/loss.tsv")
    torch.testing.assert_close(torch.tensor(nodes), torch.tensor(single), rtol=1e-4, atol=1e-6)
    writers = [line for output in outputs for line in output.splitlines() if "writes checkpoints" in line]
    assert writers == ["pretrain: rank 0 of 2 writes checkpoints, logs and outputs here"], outputs
    assert list((folder / "runs" / "pretrain").glob("*/checkpoint.pt")) == [state_file(folder, "pretrain")]
    print(f"\n{writers[0]}\nstep  one process  two nodes\n" + "\n".join(
        f"{step:4d}  {a:.6f}     {b:.6f}" for step, (a, b) in enumerate(zip(single, nodes), 1) if step % 10 == 0))


def test_a_killed_node_stops_the_job_and_both_resume_even_onto_a_fresh_machine(shared_storage_nodes, patches: Path,
                                                                                tmp_path: Path):
    """Each node with its own copy of the project: node b is killed at a random step, node a's job stops by
    itself; b comes back as a fresh machine (its runs folder gone); both resume from a's checkpoint and end at
    the uninterrupted two-node weights, each writing its own outputs."""
    a, b = tmp_path / "a", tmp_path / "b"
    nodes = start_nodes("pretrain", (a, b), patches, port := free_port())
    kill_after = random.Random().choice(range(8, 45))
    deadline = time.monotonic() + 180
    while not (curve := list((a / "runs" / "pretrain").glob("*/live/plots/metrics/train/loss.tsv"))) or \
            len(curve[0].read_text().splitlines()) <= kill_after:
        assert time.monotonic() < deadline and nodes[1].poll() is None, "node b ended before it was killed"
        time.sleep(0.005)
    for pid in [nodes[1].pid, *descendants(nodes[1].pid)]:
        os.kill(pid, signal.SIGKILL)
    output_a = nodes[0].communicate(timeout=180)[0]
    assert nodes[0].returncode != 0  # the survivor does not hang: its collectives fail once b is gone
    at_kill = load_checkpoint(state_file(a, "pretrain"))["step"]
    shutil.rmtree(b)
    outputs = finish(start_nodes("pretrain", (a, b), patches, port))
    assert [output.count(f"resuming from step {at_kill}") for output in outputs] == [1, 1], (kill_after, outputs)
    folder, _ = shared_storage_nodes
    for node in (a, b):  # a fresh b got the checkpoint from a, and both wrote what the stage produces
        assert_same_weights(state_file(folder, "pretrain"), state_file(node, "pretrain"), ("model", "ema"), kill_after)
        assert_same_weights(folder / "pretrain.pt", node / "pretrain.pt")
    stopped = next((line for line in output_a.splitlines() if "Error" in line and "gloo" in line), "")
    print(f"\nkilled node b after step {kill_after}; node a stopped (exit {nodes[0].returncode}): {stopped[:150]}"
          f"\nrerun:\n" + "\n".join(line for output in outputs for line in output.splitlines()
                                     if "resuming" in line or "writes checkpoints" in line))
