"""PSNR-oriented training of a generator: plain functions over a model, an optimizer and a batch source.

The loop is resumable bit for bit on CPU: batches are a pure function of (seed, step) (see `PatchBank`),
and checkpoints hold weights, EMA, optimizer, scheduler, step and RNG state. A run resumes only from a
checkpoint whose `run` description (params, data, code) equals the current one, so editing params restarts.
Under torchrun each process trains on its slice of every global batch (see `srcore.distributed`).
"""
from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from collections.abc import Iterator
from typing import Any, Literal

import h5py
import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from srcore import memory
from srcore.checkpoint import rng_state, save_checkpoint, set_rng_state
from srcore.config import check_kwargs
from srcore.distributed import Dist, check_batch_size, init_distributed, mean_over_ranks, wrap
from srcore.metrics import psnr, rgb_to_y
from srcore.models import GENERATORS
from srcore.ops import resolve_backend
from srcore.patches import check_patch_file
from srcore.plots import crop_strip
from srcore.runs import checkpoint_of_run, code_fingerprint
from srcore.resize import imresize


@dataclass(frozen=True)
class Runtime:
    """The `runtime` params group: where and how tensors are computed."""
    device: str = "cpu"
    precision: Literal["fp32", "bf16"] = "bf16"  # autocast dtype for training; scoring is always fp32
    channels_last: bool = True
    kernels: Literal["auto", "triton", "torch"] = "auto"
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    keep_freed_memory: bool = True  # CPU: glibc keeps freed memory for reuse (srcore.memory): no page faults
    # How dvc.yaml starts the training stages (through its ${runtime.launcher} template): "python", or e.g.
    # "torchrun --standalone --nproc_per_node=2" for data-parallel training. The library never reads it.
    launcher: str = "python"


@dataclass(frozen=True)
class PretrainSettings:
    """The `pretrain` params group."""
    generator: Literal["srresnet", "edsr", "rrdb"] = "edsr"
    generator_args: dict[str, int | float | bool] = field(default_factory=dict)
    loss: Literal["l1", "mse"] = "l1"
    lr: float = 5e-4
    schedule: Literal["cosine", "multistep", "constant"] = "cosine"
    milestones: tuple[int, ...] = ()  # multistep: steps at which lr *= gamma
    gamma: float = 0.5
    steps: int = 4000
    batch_size: int = 16
    ema_decay: float = 0.999
    augment: bool = True
    log_every: int = 50
    val_every: int = 500
    ckpt_every: int = 250

    def __post_init__(self):
        for name in ("lr", "steps", "batch_size", "log_every", "val_every", "ckpt_every"):
            if not getattr(self, name) > 0:
                raise ValueError(f"pretrain.{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"pretrain.ema_decay must be in [0, 1), got {self.ema_decay}")
        if not self.gamma > 0:
            raise ValueError(f"pretrain.gamma must be > 0, got {self.gamma}")
        # scale comes from common.scale and kernels from runtime.kernels, never from generator_args.
        check_kwargs("pretrain.generator_args", self.generator_args, GENERATORS[self.generator],
                     ("scale", "kernels"))


class PatchBank:
    """LR/HR uint8 patches held in memory; batch k is a pure function of (seed, k).

    On 2 cores, indexing tensors in the training process beats DataLoader workers, which compete with
    the training threads; the whole default training set is a few hundred MB of uint8.
    """

    def __init__(self, lr: torch.Tensor, hr: torch.Tensor, seed: int):
        if lr.shape[0] != hr.shape[0] or lr.shape[0] == 0:
            raise ValueError(f"patch bank needs as many LR as HR patches (> 0), got {lr.shape[0]} and {hr.shape[0]}")
        self.lr, self.hr, self.seed = lr, hr, seed  # (N, 3, p, p), (N, 3, sp, sp) uint8
        self._fingerprint: str | None = None

    @classmethod
    def from_h5(cls, path: str | Path, seed: int, scale: int) -> "PatchBank":
        """The patches of a `prepare` file; a file of another scale or schema is a ValueError naming it."""
        check_patch_file(Path(path), scale)
        with h5py.File(path, "r") as f:
            return cls(torch.from_numpy(f["lr"][:]), torch.from_numpy(f["hr"][:]), seed)

    def __len__(self) -> int:
        return self.lr.shape[0]

    def fingerprint(self) -> str:
        """sha256 of the patches: a checkpoint trained on other data must not be resumed. Computed once
        (hundreds of MB): the patches are not to be modified after it."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for t in (self.lr, self.hr):
                digest.update(str(tuple(t.shape)).encode())
                digest.update(t.contiguous().numpy().tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def batch(self, step: int, size: int, augment: bool, part: tuple[int, int] = (0, 1)
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(lr, hr) float32 in [0, 1]: (B, 3, p, p), (B, 3, sp, sp), randomly flipped together.

        part = (rank, world): the rank-th of `world` equal contiguous slices of the global batch of `size`
        (B = size / world), so that the slices of all ranks together are exactly the one-process batch.
        """
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        index = torch.randint(len(self), (size,), generator=gen)
        rank, world = part
        index = index.chunk(world)[rank]  # the flips below are drawn after the index: the same on every rank
        lr, hr = self.lr[index].float() / 255, self.hr[index].float() / 255
        if augment:
            # Horizontal and vertical flips (so also the 180-degree turn) commute exactly with MATLAB's
            # uint8 bicubic, so pairs stay exact protocol pairs. 90-degree turns do not: they swap which
            # 1-D pass is rounded first and move ~15% of LR pixels by a grey level, so they are left out.
            hflip, vflip = torch.randint(2, (2,), generator=gen).tolist()
            if hflip:
                lr, hr = lr.flip(-1), hr.flip(-1)
            if vflip:
                lr, hr = lr.flip(-2), hr.flip(-2)
        return lr.contiguous(), hr.contiguous()


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of `model`'s weights and buffers (BN statistics included)."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def pixel_loss(kind: str) -> nn.Module:
    losses = {"l1": nn.L1Loss, "mse": nn.MSELoss}
    if kind not in losses:
        raise ValueError(f"unknown pixel loss {kind!r}; valid: {', '.join(losses)}")
    return losses[kind]()


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, steps: int, milestones: tuple[int, ...] = (),
                   gamma: float = 0.5):
    """cosine decay to 0 over `steps`; multistep: lr *= gamma at each milestone; constant."""
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    if schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(milestones), gamma)
    if schedule == "constant":
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)
    raise ValueError(f"unknown lr schedule {schedule!r}; valid: cosine, multistep, constant")


def autocast(runtime: Runtime):
    if runtime.precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(runtime.device).type, dtype=torch.bfloat16)


def to_device(x: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    x = x.to(runtime.device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if runtime.channels_last else x


@torch.no_grad()
def validate(model: nn.Module, bank: PatchBank, scale: int, runtime: Runtime, batch_size: int = 8) -> float:
    """Mean PSNR (Y, crop = scale, uint8 SR) over the validation patches, computed in fp32."""
    model.eval()
    scores = []
    for start in range(0, len(bank), batch_size):
        lr = to_device(bank.lr[start:start + batch_size].float() / 255, runtime)
        sr = model(lr).float().clamp(0, 1).mul(255).round().cpu().permute(0, 2, 3, 1).double().numpy()
        hr = bank.hr[start:start + batch_size].permute(0, 2, 3, 1).double().numpy()
        scores += [psnr(rgb_to_y(s), rgb_to_y(h), crop=scale) for s, h in zip(sr, hr)]
    model.train()
    return float(np.mean(scores))


@torch.no_grad()
def validation_sample(model: nn.Module, bank: PatchBank, scale: int, runtime: Runtime):
    """bicubic | model | HR of the first validation patch, as a labelled PIL image for the logs."""
    model.eval()
    lr = bank.lr[:1].double() / 255  # (1, 3, p, p)
    sr = model(to_device(lr.float(), runtime)).float().clamp(0, 1).cpu()[0]
    model.train()
    panels = [("bicubic", imresize(lr, float(scale), uint8=True)[0]), ("model (EMA)", sr),
              ("HR", bank.hr[0].double() / 255)]
    side = bank.hr.shape[-1]
    return crop_strip(panels, (0, 0, side), zoom=1)


def train_state(model, ema, optimizer, scheduler, step: int, run: dict[str, Any]) -> dict[str, Any]:
    return {"arch": model.name, "arch_args": model.arch_args, "model": model.state_dict(),
            "ema": ema.module.state_dict(), "ema_n_averaged": ema.n_averaged, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "step": step, "rng": rng_state(), "run": run}


def numerics(runtime: Runtime, world: int) -> dict[str, Any]:
    """What of the runtime changes the numbers a run computes: the kind of device, precision, memory format,
    kernels and the number of processes (not the thread count, nor which GPU a rank got)."""
    return {"device": torch.device(runtime.device).type, "precision": runtime.precision,
            "channels_last": runtime.channels_last, "kernels": runtime.kernels, "world": world}


def run_description(settings: PretrainSettings, scale: int, train: PatchBank, val: PatchBank, runtime: Runtime,
                    world: int = 1) -> dict[str, Any]:
    """What identifies a training run (params, runtime numerics, data and code): a checkpoint resumes only
    an equal one."""
    return {"settings": asdict(settings), "scale": scale, "seed": train.seed, "code": code_fingerprint(),
            "runtime": numerics(runtime, world), "data": {"train": train.fingerprint(), "val": val.fingerprint()}}


def start_runtime(runtime: Runtime, seed: int) -> tuple[Runtime, str, Dist]:
    """Join torchrun's process group when launched by it, apply the thread count and allocator policy,
    seed the global RNG.

    Returns the runtime with this process's device (see srcore.distributed.init_distributed), the kernel
    backend ("triton" or "torch") and the process's Dist.
    """
    device, dist = init_distributed(runtime.device)
    runtime = replace(runtime, device=device)
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    if torch.device(runtime.device).type == "cpu":
        memory.keep_freed_memory(runtime.keep_freed_memory)
    torch.manual_seed(seed)
    return runtime, resolve_backend(runtime.kernels, runtime.device), dist


def resume_step(path: Path, run: dict[str, Any], model, ema, optimizer, scheduler, say: bool = True) -> int:
    """Restore everything from `path` when it is a checkpoint of this very run; return its step (else 0)."""
    state = checkpoint_of_run(path, run, say=say)
    if state is None:
        return 0
    model.load_state_dict(state["model"])
    ema.module.load_state_dict(state["ema"])
    ema.n_averaged.copy_(state["ema_n_averaged"])  # else the first update after resuming copies, not averages
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    if say:
        print(f"{path}: resuming from step {state['step']}")
    return state["step"]


def check_finite_losses(terms: dict[str, float]) -> None:
    """The divergence guard: a NaN or Inf loss term is a FloatingPointError listing every term. The loops
    call it before the step's update is checkpointed, and add the step and the checkpoint kept."""
    if not all(math.isfinite(value) for value in terms.values()):
        raise FloatingPointError(", ".join(f"{name} = {value:.6g}" for name, value in terms.items()))


@contextlib.contextmanager
def divergence_names_step(where: str, step: int, checkpoint: Path) -> Iterator[None]:
    """Re-raise the divergence guard's FloatingPointError as `<where> diverged at step N: <terms>; ...`."""
    try:
        yield
    except FloatingPointError as error:
        raise FloatingPointError(f"{where} diverged at step {step}: {error}; "
                                 f"the last good checkpoint is kept: {checkpoint}") from None


def check_finite_weights(model: nn.Module, step: int, where: str) -> None:
    """Called before a checkpoint is written, so that non-finite weights never replace the last good one."""
    bad = [name for name, tensor in model.state_dict().items()
           if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise FloatingPointError(f"{where} diverged at step {step}: non-finite weights in {', '.join(bad[:5])}"
                                 f"{' ...' if len(bad) > 5 else ''}; the checkpoint was not overwritten")


def progress(start: int, steps: int, desc: str, dist: Dist) -> tqdm:
    """The steps still to run, with a progress bar on rank 0 only (on a terminal)."""
    return tqdm(range(start, steps), initial=start, total=steps, desc=desc, disable=None if dist.main else True)


def pretrain(model: nn.Module, train: PatchBank, val: PatchBank, settings: PretrainSettings, runtime: Runtime,
             *, scale: int, checkpoint: Path, live=None, dist: Dist = Dist()) -> AveragedModel:
    """Train `model` with the pixel loss; return its EMA. `checkpoint` is written every ckpt_every steps
    and at the end; `live` is a dvclive.Live (or None) that receives losses, lr, val PSNR and samples.
    Under torchrun (`dist`), each process trains on its slice of every batch; only rank 0 writes."""
    check_batch_size(settings.batch_size, dist, "pretrain")
    model.to(runtime.device).train()
    if runtime.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, betas=(0.9, 0.99))
    scheduler = make_scheduler(optimizer, settings.schedule, settings.steps, settings.milestones, settings.gamma)
    ema = make_ema(model, settings.ema_decay)
    run = run_description(settings, scale, train, val, runtime, dist.world)
    start = resume_step(checkpoint, run, model, ema, optimizer, scheduler, say=dist.main)
    net = wrap(model, dist)  # DDP averages gradients over processes; `model` shares its parameters
    loss_fn = pixel_loss(settings.loss)
    bar = progress(start, settings.steps, "pretrain", dist)
    for step in bar:
        batch = train.batch(step, settings.batch_size, settings.augment, dist.part)
        lr, hr = (to_device(t, runtime) for t in batch)
        with divergence_names_step("pretrain", step, checkpoint):
            terms = train_step(model, ema, optimizer, loss_fn, lr, hr, runtime, dist=dist, net=net)
        scheduler.step()
        done = step + 1
        if not dist.main:
            continue
        if done % settings.log_every == 0:
            log_metrics(live, done, {**terms, "train/lr": scheduler.get_last_lr()[0]}, bar)
        if done % settings.val_every == 0 or done == settings.steps:
            log_validation(live, done, ema.module, val, scale, runtime, bar)
        if done % settings.ckpt_every == 0 or done == settings.steps:
            check_finite_weights(model, done, "pretrain")
            save_checkpoint(checkpoint, train_state(model, ema, optimizer, scheduler, done, run))
    return ema


def train_step(model: nn.Module, ema: AveragedModel, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
               lr: torch.Tensor, hr: torch.Tensor, runtime: Runtime, *, dist: Dist = Dist(),
               net: nn.Module | None = None) -> dict[str, float]:
    """One update on a batch: forward (autocast per runtime), loss in fp32, backward, optimizer, EMA.

    lr: (B, 3, h, w), hr: (B, 3, sh, sw) in [0, 1], already on the device and in its memory format (under
    torchrun: this process's slice of the batch, and `net` is `model`'s DDP wrapper). Returns
    {"train/loss": the loss before the update, averaged over processes}. A non-finite loss raises
    FloatingPointError (check_finite_losses) before anything changes, on every process alike. The LR
    schedule is the caller's (it steps per loop, not per update).
    """
    with autocast(runtime):
        sr = (model if net is None else net)(lr)
    loss = loss_fn(sr.float(), hr)
    terms = mean_over_ranks({"train/loss": loss.item()}, dist, runtime.device)
    check_finite_losses(terms)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    ema.update_parameters(model)  # before scheduler.step() in the loop: it reads weights only, not the lr
    return terms


def log_metrics(live, step: int, metrics: dict[str, float], bar) -> None:
    """Show `metrics` on the progress bar and log them to dvclive (when `live` is given) at `step`."""
    bar.set_postfix({name.split("/")[-1]: f"{value:.4g}" for name, value in metrics.items()})
    if live is not None:
        live.step = step
        for name, value in metrics.items():
            live.log_metric(name, value)


def log_validation(live, step: int, model: nn.Module, val: PatchBank, scale: int, runtime: Runtime, bar) -> None:
    """Validation PSNR of `model` (printed, and logged with a sample image when `live` is given)."""
    val_psnr = validate(model, val, scale, runtime)
    bar.write(f"step {step}: validation PSNR (EMA) {val_psnr:.3f} dB")
    if live is not None:
        live.step = step
        live.log_metric("val/psnr", val_psnr)
        live.log_image("val/sample.png", validation_sample(model, val, scale, runtime))
        live.make_summary()
