"""GAN fine-tuning of a PSNR-trained generator (SRGAN / ESRGAN): plain step functions and a resumable loop.

One step updates G on  pixel_weight * pixel + perceptual_weight * perceptual + adversarial_weight * adversarial,
then D on the adversarial loss, with the detach semantics of the papers (see `srcore.losses`). The
perceptual term is ESRGAN's VGG19 loss when local VGG19 weights are given, or discriminator feature matching,
which needs no pretrained weights (the offline default), or nothing.
Resuming works as in `srcore.train`: checkpoints hold G, its EMA, D, both optimizers and schedulers, step and
RNG, plus a description of the run (params, data and the PSNR model it started from).
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from srcore.checkpoint import rng_state, save_checkpoint, set_rng_state
from srcore.config import check_kwargs
from srcore.discriminator import DISCRIMINATORS
from srcore.distributed import Dist, check_batch_size, mean_over_ranks, unwrap, wrap
from srcore.losses import VGGPerceptualLoss, discriminator_loss, feature_matching_loss, generator_loss
from srcore.runs import checkpoint_of_run, code_fingerprint
from srcore.train import (PatchBank, Runtime, autocast, check_finite_losses, check_finite_weights,
                          divergence_names_step, log_metrics, log_validation, make_ema, make_scheduler, numerics,
                          pixel_loss, progress, to_device)


@dataclass(frozen=True)
class GanSettings:
    """The `gan` params group (ESRGAN's loss weights by default)."""
    steps: int = 1200
    batch_size: int = 16
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    schedule: Literal["cosine", "multistep", "constant"] = "multistep"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.5
    pixel_loss: Literal["l1", "mse"] = "l1"
    pixel_weight: float = 1e-2
    perceptual: Literal["feature_matching", "vgg", "none"] = "feature_matching"
    perceptual_weight: float = 1.0
    vgg_layers: dict[str, float] = field(default_factory=lambda: {"conv5_4": 1.0})
    vgg_weights: str = ""  # a local torchvision VGG19 state dict, read when perceptual is "vgg"
    adversarial: Literal["ragan", "vanilla"] = "ragan"
    adversarial_weight: float = 5e-3
    discriminator_args: dict[str, int | bool] = field(default_factory=dict)  # srcore.discriminator.VGGDiscriminator
    ema_decay: float = 0.995
    augment: bool = True
    log_every: int = 50
    val_every: int = 250
    ckpt_every: int = 250

    def __post_init__(self):
        for name in ("steps", "batch_size", "lr_g", "lr_d", "log_every", "val_every", "ckpt_every"):
            if not getattr(self, name) > 0:
                raise ValueError(f"gan.{name} must be > 0, got {getattr(self, name)}")
        for name in ("pixel_weight", "perceptual_weight", "adversarial_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"gan.{name} must be >= 0, got {getattr(self, name)}")
        if not self.gamma > 0:
            raise ValueError(f"gan.gamma must be > 0, got {self.gamma}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"gan.ema_decay must be in [0, 1), got {self.ema_decay}")
        check_kwargs("gan.discriminator_args", self.discriminator_args, DISCRIMINATORS["vgg"], ())
        if self.perceptual == "vgg" and not self.vgg_weights:
            raise ValueError("gan.perceptual is 'vgg' but gan.vgg_weights names no file (nothing is downloaded); "
                             "give a local torchvision VGG19 state dict or use perceptual: feature_matching")


@dataclass
class GanLosses:
    """The loss terms of one run, built once: pixel and VGG modules are reused every step."""
    pixel: nn.Module
    pixel_weight: float
    perceptual: str
    perceptual_weight: float
    vgg: VGGPerceptualLoss | None
    adversarial: str
    adversarial_weight: float
    backend: str  # kernel backend of the relativistic loss: "torch" or "triton"


def make_losses(settings: GanSettings, backend: str, device: str) -> GanLosses:
    vgg = None
    if settings.perceptual == "vgg":
        vgg = VGGPerceptualLoss(settings.vgg_layers, settings.vgg_weights).to(device)
    return GanLosses(pixel_loss(settings.pixel_loss), settings.pixel_weight, settings.perceptual,
                     settings.perceptual_weight, vgg, settings.adversarial, settings.adversarial_weight, backend)


def perceptual_term(losses: GanLosses, sr, hr, real_features, fake_features) -> torch.Tensor:
    if losses.perceptual == "vgg":
        return losses.vgg(sr, hr)
    if losses.perceptual == "feature_matching":
        return feature_matching_loss(real_features, fake_features)
    return sr.new_zeros(())


def gan_step(generator: nn.Module, discriminator: nn.Module, opt_g, opt_d, lr: torch.Tensor, hr: torch.Tensor,
             losses: GanLosses, runtime: Runtime) -> dict[str, float]:
    """One G update then one D update on a batch: lr (B, 3, h, w), hr (B, 3, sh, sw) in [0, 1].

    Returns every loss term and the mean D logits on real and fake images, as floats. Under DDP, the
    networks come wrapped (srcore.distributed.wrap); the G step runs D unwrapped, as D's own gradients are
    not wanted there and DDP would otherwise wait for them.
    """
    # G step: D is frozen; its verdict on real images is a fixed reference (detached).
    frozen_d = unwrap(discriminator)
    frozen_d.requires_grad_(False)
    with autocast(runtime):
        sr = generator(lr)
        with torch.no_grad():
            real_logits, real_features = frozen_d(hr, return_features=True)
        fake_logits, fake_features = frozen_d(sr, return_features=True)
    sr = sr.float()
    pixel = losses.pixel(sr, hr)
    perceptual = perceptual_term(losses, sr, hr, real_features, fake_features)
    adversarial = generator_loss(losses.adversarial, real_logits.float(), fake_logits.float(), backend=losses.backend)
    g_loss = (losses.pixel_weight * pixel + losses.perceptual_weight * perceptual
              + losses.adversarial_weight * adversarial)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    # D step: the generator's output is a fixed input (detached), so nothing flows back into G.
    frozen_d.requires_grad_(True)
    with autocast(runtime):
        real_logits = discriminator(hr)
        fake_logits = discriminator(sr.detach())
    d_loss = discriminator_loss(losses.adversarial, real_logits.float(), fake_logits.float(), backend=losses.backend)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    return {"g/total": g_loss.item(), "g/pixel": pixel.item(), "g/perceptual": perceptual.item(),
            "g/adversarial": adversarial.item(), "d/loss": d_loss.item(),
            "d/real": real_logits.float().mean().item(), "d/fake": fake_logits.float().mean().item()}


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_description(settings: GanSettings, scale: int, init: Path, train: PatchBank, val: PatchBank,
                    runtime: Runtime, world: int = 1) -> dict[str, Any]:
    """What identifies a GAN run (params, runtime numerics, data, initial model, code): a checkpoint resumes
    only an equal one."""
    return {"settings": asdict(settings), "scale": scale, "seed": train.seed, "init": file_digest(init),
            "code": code_fingerprint(), "runtime": numerics(runtime, world),
            "data": {"train": train.fingerprint(), "val": val.fingerprint()}}


def gan_state(generator, ema, discriminator, opt_g, opt_d, sched_g, sched_d, step: int, run: dict) -> dict[str, Any]:
    return {"arch": generator.name, "arch_args": generator.arch_args, "model": generator.state_dict(),
            "ema": ema.module.state_dict(), "ema_n_averaged": ema.n_averaged,
            "discriminator": {"arch": discriminator.name, "arch_args": discriminator.arch_args,
                              "model": discriminator.state_dict()},
            "optimizer": opt_g.state_dict(), "optimizer_d": opt_d.state_dict(), "scheduler": sched_g.state_dict(),
            "scheduler_d": sched_d.state_dict(), "step": step, "rng": rng_state(), "run": run}


def resume(path: Path, run: dict, generator, ema, discriminator, opt_g, opt_d, sched_g, sched_d,
           say: bool = True) -> int:
    """Restore everything from `path` when it is a checkpoint of this very run; return its step (else 0)."""
    state = checkpoint_of_run(path, run, say=say)
    if state is None:
        return 0
    generator.load_state_dict(state["model"])
    ema.module.load_state_dict(state["ema"])
    ema.n_averaged.copy_(state["ema_n_averaged"])
    discriminator.load_state_dict(state["discriminator"]["model"])
    for target, key in ((opt_g, "optimizer"), (opt_d, "optimizer_d"), (sched_g, "scheduler"), (sched_d, "scheduler_d")):
        target.load_state_dict(state[key])
    set_rng_state(state["rng"])
    if say:
        print(f"{path}: resuming from step {state['step']}")
    return state["step"]


def train_gan(generator: nn.Module, discriminator: nn.Module, train: PatchBank, val: PatchBank,
              settings: GanSettings, runtime: Runtime, *, scale: int, init: Path, checkpoint: Path,
              backend: str = "torch", live=None, dist: Dist = Dist()):
    """Fine-tune `generator` (already holding the PSNR weights read from `init`) against `discriminator`.

    Returns the EMA of the generator. `checkpoint` is written every ckpt_every steps and at the end. Under
    torchrun (`dist`), each process trains on its slice of every batch; only rank 0 writes.
    """
    check_batch_size(settings.batch_size, dist, "gan")
    for net in (generator, discriminator):
        net.to(runtime.device).train()
        if runtime.channels_last:
            net.to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(generator.parameters(), lr=settings.lr_g, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=settings.lr_d, betas=(0.9, 0.99))
    sched_g, sched_d = (make_scheduler(opt, settings.schedule, settings.steps, settings.milestones, settings.gamma)
                        for opt in (opt_g, opt_d))
    ema = make_ema(generator, settings.ema_decay)
    run = run_description(settings, scale, init, train, val, runtime, dist.world)
    start = resume(checkpoint, run, generator, ema, discriminator, opt_g, opt_d, sched_g, sched_d, say=dist.main)
    nets = wrap(generator, dist), wrap(discriminator, dist)
    losses = make_losses(settings, backend, runtime.device)
    bar = progress(start, settings.steps, "train_gan", dist)
    for step in bar:
        batch = train.batch(step, settings.batch_size, settings.augment, dist.part)
        lr, hr = (to_device(t, runtime) for t in batch)
        metrics = mean_over_ranks(gan_step(*nets, opt_g, opt_d, lr, hr, losses, runtime), dist, runtime.device)
        with divergence_names_step("train_gan", step, checkpoint):
            check_finite_losses(metrics)
        sched_g.step()
        sched_d.step()
        ema.update_parameters(generator)
        done = step + 1
        if not dist.main:
            continue
        if done % settings.log_every == 0:
            log_metrics(live, done, {**metrics, "train/lr_g": sched_g.get_last_lr()[0]}, bar)
        if done % settings.val_every == 0 or done == settings.steps:
            log_validation(live, done, ema.module, val, scale, runtime, bar)
        if done % settings.ckpt_every == 0 or done == settings.steps:
            for net in (generator, discriminator):
                check_finite_weights(net, done, "train_gan")
            save_checkpoint(checkpoint, gan_state(generator, ema, discriminator, opt_g, opt_d, sched_g, sched_d,
                                                  done, run))
    return ema
