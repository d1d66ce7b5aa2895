"""The training engine with the pretrain recipe: exact resume, run identity, the divergence guard, the state
store outside DVC's outputs, and curves published only when a run completes."""
from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from srcore.checkpoint import load_checkpoint
from srcore.config import load_params, merged, params_group
from srcore.data import TrainingImages
from srcore.engine import Loop, TrainState, adam, fit, train
from srcore.recipes import data_digests, pretrain
from srcore.runs import KEEP_RUNS, RunStore, prune, trim_live_logs
from srcore.settings import CommonSettings, PretrainSettings, Runtime
from tiny_data import tiny_images, tiny_val

ROOT = Path(__file__).resolve().parents[1]
PARAMS = merged(load_params(ROOT / "params.yaml"), {
    "common": {"seed": 0, "scale": 2},
    "runtime": {"precision": "fp32", "channels_last": False, "kernels": "torch"},
    "pretrain": {"generator": "edsr", "generator_args": {"num_feat": 8, "num_block": 1, "global_residual": False},
                 "steps": 6, "batch_size": 2, "log_every": 1, "val_every": 3, "ckpt_every": 2}})
COMMON = params_group(PARAMS, CommonSettings, "common")
RUNTIME = params_group(PARAMS, Runtime, "runtime")
SETTINGS = params_group(PARAMS, PretrainSettings, "pretrain")


def recipe(bank: TrainingImages | None = None, settings: PretrainSettings = SETTINGS, runtime: Runtime = RUNTIME,
           optimizer=adam, code: str = "test"):
    torch.manual_seed(0)  # the model is drawn from the global RNG, as the stage does after start_runtime
    return pretrain.build(settings, COMMON, runtime, data=data_digests(bank or tiny_images(), tiny_val()),
                          optimizer=optimizer, code=code)


def run(root: Path, bank: TrainingImages | None = None, **kwargs) -> TrainState:
    """Build the pretrain recipe and train it to the end with its state under `root`."""
    bank = bank or tiny_images()
    made = recipe(bank, **kwargs)
    settings = kwargs.get("settings", SETTINGS)
    return train(made, bank, tiny_val(), Loop.of(settings), kwargs.get("runtime", RUNTIME), scale=2,
                 store=RunStore(root, "pretrain", made.run))


def store_of(root: Path, **kwargs) -> RunStore:
    made = recipe(**kwargs)
    return RunStore(root, "pretrain", made.run)


class Crash(TrainingImages):
    """Training images whose batch 3 raises KeyboardInterrupt: a kill after the step-2 checkpoint."""
    def batch(self, step, size, augment, part=(0, 1)):
        if step == 3:
            raise KeyboardInterrupt
        return super().batch(step, size, augment, part)


def test_interrupted_run_resumes_to_identical_weights(tmp_path: Path):
    straight = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", tiny_images(cls=Crash))
    assert load_checkpoint(store_of(tmp_path / "b").checkpoint)["step"] == 2
    torch.manual_seed(123)  # resuming must not depend on the global RNG the new process starts with
    resumed = run(tmp_path / "b")
    for a, b in zip(straight.ema.module.state_dict().values(), resumed.ema.module.state_dict().values()):
        assert torch.equal(a, b)
    assert straight.step == resumed.step == 6


def test_other_params_data_code_or_numerics_are_other_runs(tmp_path: Path):
    """Each identity keys a folder of its own: nothing of one run is resumed by (or clobbered by) another."""
    run(tmp_path)
    assert store_of(tmp_path).resume_step() == 6
    assert store_of(tmp_path, runtime=replace(RUNTIME, threads=1)).resume_step() == 6  # threads: same numbers
    other = tiny_images(nudge=True)  # one pixel differs by one grey level
    others = [store_of(tmp_path, settings=replace(SETTINGS, lr=1e-3)), store_of(tmp_path, bank=other),
              store_of(tmp_path, code="edited library"),
              *(store_of(tmp_path, runtime=replace(RUNTIME, **change))
                for change in ({"precision": "bf16"}, {"channels_last": True}, {"device": "meta"}))]
    assert all(store.resume_step() is None for store in others)
    assert len({store.dir for store in others} | {store_of(tmp_path).dir}) == len(others) + 1


def test_nan_loss_stops_before_any_update_and_keeps_last_good_checkpoint(tmp_path: Path):
    seen = {}

    class Poisoned(TrainingImages):
        def batch(self, step, size, augment, part=(0, 1)):
            lq, hr = super().batch(step, size, augment, part)
            return (lq * float("nan"), hr) if step == 4 else (lq, hr)

    made = recipe()
    original_step = made.step

    def watching_step(state, lq, hr):
        seen["before"] = [t.clone() for t in state.generator.state_dict().values()]
        return original_step(state, lq, hr)

    store = RunStore(tmp_path, "pretrain", made.run)
    with pytest.raises(FloatingPointError, match=r"pretrain diverged at step 4: train/loss = nan; "
                                                 r"the last good checkpoint is kept: .*checkpoint.pt"):
        train(replace(made, step=watching_step), tiny_images(cls=Poisoned), tiny_val(), Loop.of(SETTINGS),
              RUNTIME, scale=2, store=store)
    after = list(made.state.generator.state_dict().values())
    assert all(torch.equal(a, b) for a, b in zip(seen["before"], after))  # the bad batch changed no weight
    state = load_checkpoint(store.checkpoint)
    assert state["step"] == 4 and all(torch.isfinite(t).all() for t in state["model"].values())


def test_non_finite_weights_never_overwrite_the_last_good_checkpoint(tmp_path: Path):
    class Blowup(torch.optim.Adam):  # an update that turns one weight into inf, with a finite loss before it
        def step(self, closure=None):
            super().step(closure)
            if self.state[self.param_groups[0]["params"][0]]["step"] == 4:
                with torch.no_grad():
                    self.param_groups[0]["params"][0].view(-1)[0] = float("inf")

    with pytest.raises(FloatingPointError, match=r"pretrain diverged at step 4: non-finite weights in "):
        run(tmp_path, optimizer=lambda params, lr: Blowup(params, lr=lr))
    state = load_checkpoint(store_of(tmp_path).checkpoint)
    assert state["step"] == 2 and all(torch.isfinite(t).all() for t in state["model"].values())


def test_fit_publishes_curves_and_model_only_when_the_run_completes(tmp_path: Path):
    live, out = tmp_path / "metrics" / "pretrain", tmp_path / "psnr.pt"
    live.mkdir(parents=True)
    (live / "metrics.json").write_text('{"earlier": "run"}')  # an earlier experiment's results
    bank = tiny_images()
    made = recipe(bank)
    args = dict(scale=2, runs=tmp_path / "runs", live=live, out=out)
    with pytest.raises(KeyboardInterrupt):
        fit(recipe(tiny_images(cls=Crash)), tiny_images(cls=Crash), tiny_val(), Loop.of(SETTINGS), RUNTIME,
            **args)
    assert (live / "metrics.json").read_text() == '{"earlier": "run"}' and not out.exists()
    fit(made, bank, tiny_val(), Loop.of(SETTINGS), RUNTIME, **args)  # resumes at step 2
    steps = [line.split("\t")[0] for line in (live / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()]
    assert steps == ["step", "1", "2", "3", "4", "5", "6"]  # complete: nothing lost, no step twice
    assert load_checkpoint(out)["step"] == 6 and json.loads((live / "metrics.json").read_text())["step"] == 6


def test_prune_keeps_the_most_recent_runs(tmp_path: Path):
    for i in range(KEEP_RUNS + 3):
        folder = tmp_path / f"run{i}"
        folder.mkdir()
        (folder / "checkpoint.pt").write_bytes(b"x")
        os.utime(folder / "checkpoint.pt", (1_000_000 + i, 1_000_000 + i))  # run i written at time i
    prune(tmp_path, KEEP_RUNS)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"run{i}" for i in range(3, KEEP_RUNS + 3))


def test_trim_live_logs_drops_rows_a_resumed_run_logs_again(tmp_path: Path):
    tsv = tmp_path / "plots" / "metrics" / "train" / "loss.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("step\tloss\n50\t0.3\n100\t0.2\n150\t0.1\n1")  # killed while writing step 200
    trim_live_logs(tmp_path, 100)
    assert tsv.read_text() == "step\tloss\n50\t0.3\n100\t0.2\n"


def test_a_generator_arg_the_network_does_not_take_is_named():
    with pytest.raises(ValueError, match=r"pretrain.generator_args: unknown key\(s\) num_blocks"):
        recipe(settings=replace(SETTINGS, generator_args={"num_blocks": 2}))


def test_extending_a_finished_run_continues_it_exactly_on_a_multistep_schedule(tmp_path: Path, capsys):
    """`extend: true`: a 4-step run raised to 8 steps starts at step 4 from the finished run's state; with a
    multistep schedule that is exactly the run an uninterrupted 8-step run is (same weights, bit for bit)."""
    multistep = dict(schedule="multistep", milestones=(3, 6), gamma=0.5, ckpt_every=4, val_every=4)
    short, long = replace(SETTINGS, steps=4, **multistep), replace(SETTINGS, steps=8, **multistep)
    straight = fit_run(tmp_path / "straight", long)
    fit_run(tmp_path / "extended", short)
    capsys.readouterr()
    extended = fit_run(tmp_path / "extended", replace(long, extend=True))
    assert "extending run" in capsys.readouterr().out
    for a, b in zip(straight.ema.module.state_dict().values(), extended.ema.module.state_dict().values()):
        assert torch.equal(a, b)
    steps = [line.split("\t")[0] for line in (tmp_path / "extended" / "live" / "plots" / "metrics" / "train" /
                                              "loss.tsv").read_text().splitlines()[1:]]
    assert steps == [str(s) for s in range(1, 9)]  # the earlier run's curve, continued


def test_extending_a_cosine_run_restarts_the_new_schedule_at_its_step(tmp_path: Path, capsys):
    fit_run(tmp_path, replace(SETTINGS, steps=4))  # cosine to 0 at step 4
    fit_run(tmp_path, replace(SETTINGS, steps=8, extend=True))
    assert "extending run" in capsys.readouterr().out
    rows = (tmp_path / "live" / "plots" / "metrics" / "train" / "learning_rate.tsv").read_text().splitlines()[1:]
    rates = {int(step): float(rate) for step, rate in (row.split("\t") for row in rows)}
    assert rates[4] == pytest.approx(0.0, abs=1e-12)  # the 4-step run's schedule ended at 0
    for step in range(5, 9):  # then the 8-step cosine from step 4 on: lr (1 + cos(pi step / 8)) / 2
        assert rates[step] == pytest.approx(SETTINGS.lr * (1 + math.cos(math.pi * step / 8)) / 2, rel=1e-6)
    without = fit_run(tmp_path / "fresh", replace(SETTINGS, steps=8, extend=True))  # nothing to extend: step 0
    assert without.step == 8 and "extending" not in capsys.readouterr().out


def fit_run(root: Path, settings: PretrainSettings) -> TrainState:
    bank = tiny_images()
    return fit(recipe(bank, settings=settings), bank, tiny_val(), Loop.of(settings), RUNTIME, scale=2,
               runs=root / "runs", live=root / "live", out=root / "out.pt")
