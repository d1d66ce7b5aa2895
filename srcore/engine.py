"""The one training engine: a TrainState with one save/restore, and the loop every recipe runs.

A recipe (srcore.recipes) builds the parts of a run into a `Recipe`: a TrainState, the run's identity and one
step with one contract,

    step(state, lq, hr) -> {metric name: float}
      1. computes every loss of the step, averaged over the processes (srcore.distributed.mean_over_ranks);
      2. checks them finite with `check_finite_losses` BEFORE any optimizer update, so a bad batch changes no
         weight and every process stops at the same step;
      3. updates the networks, then the EMA of the generator.

`train` owns everything else: resume once, draw batches, step the LR schedules, log, validate, checkpoint;
`fit` wraps it for a stage: the run's resumable state in a RunStore, its logs, and the outputs at the end.
Batches are a pure function of (seed, step) and the checkpoint holds every stateful part including the RNG,
so a run killed at any point resumes bit for bit on CPU. Under torchrun each process trains on its slice of
every global batch and only rank 0 logs and writes.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from srcore.checkpoint import save_generator
from srcore.data import PatchBank, TrainingImages
from srcore.distributed import Dist, elect_writers, finish_distributed, shared_checkpoint
from srcore.modelcard import training_card
from srcore.runs import RunStore, open_live, predecessor, publish_live, run_key
from srcore.runtime import to_device
from srcore.settings import Runtime
from srcore.validation import log_validation

StepFn = Callable[["TrainState", torch.Tensor, torch.Tensor], dict[str, float]]


@dataclass
class TrainState:
    """Every stateful part of a run, by name: what one checkpoint saves and restores.

    networks["generator"] is the network the run produces; `ema` averages its weights. Other networks
    (a discriminator) train beside it. Optimizers and schedulers are keyed by the network they update.
    """
    networks: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]
    ema: AveragedModel
    step: int = 0

    @property
    def generator(self) -> nn.Module:
        return self.networks["generator"]

    def to_dict(self, run: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint: a generator file (srcore.checkpoint) plus everything needed to resume `run`."""
        generator = self.generator
        others = {name: {"arch": net.name, "arch_args": net.arch_args, "model": net.state_dict()}
                  for name, net in self.networks.items() if name != "generator"}
        return {"arch": generator.name, "arch_args": generator.arch_args, "model": generator.state_dict(),
                "ema": self.ema.module.state_dict(), "ema_n_averaged": self.ema.n_averaged, "networks": others,
                "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
                "schedulers": {name: sched.state_dict() for name, sched in self.schedulers.items()},
                "step": self.step, "rng": rng_state(), "run": run}

    def restore(self, checkpoint: dict[str, Any], schedulers: bool = True) -> None:
        """Load every part from `checkpoint` (a to_dict of the same run; schedulers=False: keep this state's
        own schedules, for an extension, see `extend_from`)."""
        self.generator.load_state_dict(checkpoint["model"])
        for name, saved in checkpoint["networks"].items():
            self.networks[name].load_state_dict(saved["model"])
        self.ema.module.load_state_dict(checkpoint["ema"])
        self.ema.n_averaged.copy_(checkpoint["ema_n_averaged"])  # else the next update copies, not averages
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(checkpoint["optimizers"][name])
        for name, scheduler in self.schedulers.items() if schedulers else ():
            scheduler.load_state_dict(checkpoint["schedulers"][name])
        set_rng_state(checkpoint["rng"])
        self.step = checkpoint["step"]


@dataclass(frozen=True)
class Recipe:
    """A training run ready to go: its state, its step (see the module docstring) and its identity."""
    name: str                  # the stage, as messages and progress bars name it
    state: TrainState
    step: StepFn
    run: dict[str, Any]        # what identifies the run: a checkpoint resumes only an equal one
    learning_rates: tuple[str, ...] = ("generator",)  # optimizers whose learning rate is logged


@dataclass(frozen=True)
class Loop:
    """When things happen: the params every recipe shares (steps, batch, augmentation and the cadences)."""
    steps: int
    batch_size: int
    augment: bool
    log_every: int
    val_every: int
    ckpt_every: int
    extend: bool  # continue the furthest earlier run that differs only in steps (srcore.engine.fit)

    @classmethod
    def of(cls, settings: Any) -> "Loop":
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


@dataclass
class Logs:
    """Where a run reports: a dvclive.Live (or None) and the progress bar."""
    live: Any = None
    bar: Any = field(default=None, repr=False)


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of `model`'s weights and buffers (BN statistics included)."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, steps: int, milestones: tuple[int, ...] = (),
                   gamma: float = 0.5) -> torch.optim.lr_scheduler.LRScheduler:
    """cosine decay to 0 over `steps`; multistep: learning rate *= gamma at each milestone; constant."""
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    if schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(milestones), gamma)
    if schedule == "constant":
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; valid: cosine, multistep, constant")


def adam(params, lr: float) -> torch.optim.Optimizer:
    """The recipes' optimizer: Adam with beta2 = 0.99, as ESRGAN and BasicSR train."""
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99))


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_finite_losses(terms: dict[str, float]) -> None:
    """The divergence guard: a NaN or Inf loss term is a FloatingPointError listing every term. Steps call
    it before any update; the loop adds the step and the checkpoint kept."""
    if not all(math.isfinite(value) for value in terms.values()):
        raise FloatingPointError(", ".join(f"{name} = {value:.6g}" for name, value in terms.items()))


def check_finite_weights(state: TrainState, where: str) -> None:
    """Called before a checkpoint is written, so that non-finite weights never replace the last good one."""
    bad = [f"{net_name}: {name}" if net_name != "generator" else name
           for net_name, net in state.networks.items() for name, tensor in net.state_dict().items()
           if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise FloatingPointError(f"{where} diverged at step {state.step}: non-finite weights in {', '.join(bad[:5])}"
                                 f"{' ...' if len(bad) > 5 else ''}; the checkpoint was not overwritten")


@contextlib.contextmanager
def divergence_names_step(where: str, step: int, kept: object) -> Iterator[None]:
    """Re-raise the divergence guard's FloatingPointError as `<where> diverged at step N: <terms>; ...`."""
    try:
        yield
    except FloatingPointError as error:
        raise FloatingPointError(f"{where} diverged at step {step}: {error}; "
                                 f"the last good checkpoint is kept: {kept}") from None


def train(recipe: Recipe, data: TrainingImages, val: PatchBank, loop: Loop, runtime: Runtime, *, scale: int,
          store: RunStore, live=None, dist: Dist = Dist()) -> TrainState:
    """Run `recipe` to `loop.steps`, resuming from `store` when it holds a checkpoint of this very run.

    Returns the state at the end; its EMA generator is what the run produces. Checkpoints go to `store`
    every ckpt_every steps and at the end; `live` (a dvclive.Live, or None) gets the metrics, learning
    rates, validation PSNR and a sample image. Under torchrun every process resumes from the furthest
    checkpoint any of them finds (srcore.distributed.shared_checkpoint), and only writers write.
    """
    state = recipe.state
    restore(state, store, dist)
    logs = Logs(live, tqdm(range(state.step, loop.steps), initial=state.step, total=loop.steps, desc=recipe.name,
                           disable=None if dist.writes else True))
    batches = data.batches(state.step, loop.steps, loop.batch_size, loop.augment, dist.part)
    with contextlib.closing(batches):  # stops the loader's workers, however the loop ends
        for step, batch in zip(logs.bar, batches):
            lq, hr = (to_device(t, runtime) for t in batch)
            with divergence_names_step(recipe.name, step, store.checkpoint):
                terms = recipe.step(state, lq, hr)
            for scheduler in state.schedulers.values():
                scheduler.step()
            state.step = step + 1
            if dist.writes:
                after_step(recipe, terms, loop, logs, val, scale, runtime, store)
    return state


def restore(state: TrainState, store: RunStore, dist: Dist) -> None:
    """Load this run's checkpoint into `state`, if any process of the job has one."""
    checkpoint = shared_checkpoint(store.load(), dist)
    if checkpoint is not None:
        state.restore(checkpoint)
        if dist.writes:
            print(f"{store.checkpoint}: resuming from step {state.step}")


def after_step(recipe: Recipe, terms: dict[str, float], loop: Loop, logs: Logs, val: PatchBank, scale: int,
               runtime: Runtime, store: RunStore) -> None:
    """Rank 0's work after a step: log, validate and checkpoint when their turn has come."""
    state, done = recipe.state, recipe.state.step
    if done % loop.log_every == 0:
        rates = {f"train/learning_rate{'' if name == 'generator' else '_' + name}":
                 state.schedulers[name].get_last_lr()[0] for name in recipe.learning_rates}
        log_metrics(logs, done, {**terms, **rates})
    if done % loop.val_every == 0 or done == loop.steps:
        log_validation(logs.live, done, state.ema.module, val, scale, runtime, logs.bar)
    if done % loop.ckpt_every == 0 or done == loop.steps:
        check_finite_weights(state, recipe.name)
        store.save(state.to_dict(recipe.run))


def log_metrics(logs: Logs, step: int, metrics: dict[str, float]) -> None:
    """Show `metrics` on the progress bar and log them to dvclive (when there is a Live) at `step`."""
    logs.bar.set_postfix({name.split("/")[-1]: f"{value:.4g}" for name, value in metrics.items()})
    if logs.live is not None:
        logs.live.step = step
        for name, value in metrics.items():
            logs.live.log_metric(name, value)


def fit(recipe: Recipe, data: TrainingImages, val: PatchBank, loop: Loop, runtime: Runtime, *, scale: int,
        runs: Path, live: Path, out: Path, dist: Dist = Dist(), sources: dict[str, Path] | None = None
        ) -> TrainState:
    """A training stage's whole run: resume or start `recipe` with its state under `runs` (srcore.runs),
    train to the end, then write the stage's outputs: the EMA generator to `out`, with its model card
    (srcore.modelcard; `sources`: the files the run read, by role), and the finished dvclive logs to `live`
    (nothing of either is touched before the run completes). Under torchrun one process per storage writes
    (srcore.distributed.elect_writers): rank 0, and the first process of any machine with a copy of its own.

    With loop.extend, a run that differs from an earlier one only in its number of steps starts from that
    run's latest checkpoint (see `extend_from`) instead of step 0."""
    dist = elect_writers(dist, runs)
    if dist.world > 1 and dist.writes:
        print(f"{recipe.name}: rank {dist.rank} of {dist.world} writes checkpoints, logs and outputs here")
    base = predecessor(runs, recipe.name, recipe.run) if loop.extend else None
    if base is not None:
        recipe = replace(recipe, run={**recipe.run, "extends": run_key(base.run)})
    store = RunStore(runs, recipe.name, recipe.run)
    if base is not None and store.resume_step() is None:
        extend_from(recipe, base, say=dist.writes)
    with open_live(store, main=dist.writes, base=base) as logger:
        state = train(recipe, data, val, loop, runtime, scale=scale, store=store, live=logger, dist=dist)
    if dist.writes:
        card = training_card(state.ema.module, recipe.run, loop.steps, logger.summary,
                             {role: str(path) for role, path in (sources or {}).items()})
        save_generator(out, state.ema.module, loop.steps, card=card)
        publish_live(store, live)
    finish_distributed(dist)
    return state


def extend_from(recipe: Recipe, base: RunStore, say: bool = True) -> None:
    """Start `recipe` where the run `base` left off: its weights, EMA, optimizer moments and RNG, at its
    step; the learning rates follow this run's own schedule from that step on (for multistep and constant
    schedules exactly where an uninterrupted run of this length would be; a cosine schedule over the new
    length restarts at its value there)."""
    state = recipe.state
    state.restore(base.load(), schedulers=False)
    for name, scheduler in state.schedulers.items():
        for group in state.optimizers[name].param_groups:
            group["lr"] = group["initial_lr"]
        with warnings.catch_warnings():  # stepping a schedule with no optimizer step between is the point here
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            for _ in range(state.step):  # the chainable schedules step from their start, as a fresh run does
                scheduler.step()
    if say:
        rates = ", ".join(f"{name} {s.get_last_lr()[0]:.3g}" for name, s in state.schedulers.items())
        print(f"{recipe.name}: extending run {run_key(base.run)} from step {state.step} to "
              f"{recipe.run['settings']['steps']}; learning rate from there on: {rates}, following this "
              f"run's {recipe.run['settings']['schedule']} schedule")
