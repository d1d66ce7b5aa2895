"""The GAN recipe (SRGAN / ESRGAN): fine-tune a PSNR-trained generator G against a VGG-style discriminator D.

G's loss is  pixel_weight * pixel + perceptual_weight * perceptual + adversarial_weight * adversarial,
D's the adversarial loss, with the papers' detach semantics (see srcore.losses). The perceptual term is
ESRGAN's VGG19 loss when local VGG19 weights are given, discriminator feature matching (no pretrained
weights: the offline default), or nothing. One step computes both networks' losses and gradients, checks
every loss finite, and only then updates G, D and the EMA of G.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from srcore.config import check_kwargs
from srcore.discriminator import DISCRIMINATORS, build_discriminator
from srcore.distributed import Dist, check_batch_size, mean_over_ranks, unwrap, wrap
from srcore.engine import Recipe, TrainState, adam, check_finite_losses, make_ema, make_scheduler
from srcore.losses import (VGGPerceptualLoss, discriminator_loss, feature_matching_loss, generator_loss,
                           pixel_loss)
from srcore.imports import code_fingerprint
from srcore.recipes import run_identity
from srcore.runtime import autocast, place_networks
from srcore.settings import CommonSettings, GanSettings, Runtime


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


def make_losses(settings: GanSettings, backend: str, runtime: Runtime) -> GanLosses:
    vgg = None
    if settings.perceptual == "vgg":
        vgg = VGGPerceptualLoss(settings.vgg_layers, settings.vgg_weights)
        vgg.to(runtime.device, memory_format=torch.channels_last if runtime.channels_last else torch.preserve_format)
    return GanLosses(pixel_loss(settings.pixel_loss), settings.pixel_weight, settings.perceptual,
                     settings.perceptual_weight, vgg, settings.adversarial, settings.adversarial_weight, backend)


def perceptual_name(settings: GanSettings) -> str:
    """The perceptual term the run uses, as the stage announces it."""
    perceptual = "none" if settings.perceptual_weight == 0 else settings.perceptual
    vgg = f" (VGG19 {dict(settings.vgg_layers)} from {settings.vgg_weights})" if perceptual == "vgg" else ""
    return f"perceptual term: {perceptual}{vgg}; adversarial: {settings.adversarial}"


def build(settings: GanSettings, common: CommonSettings, runtime: Runtime, *, data: dict[str, str],
          generator: nn.Module, init_digest: str, kernels: str = "torch", dist: Dist = Dist(),
          code: str | None = None, optimizer=adam) -> Recipe:
    """The GAN run: `generator` (holding the PSNR weights whose file has sha256 `init_digest`), a fresh D
    (drawn from the global RNG), an optimizer and schedule each, the EMA of G and the losses."""
    check_batch_size(settings.batch_size, dist, "gan")
    check_kwargs("gan.discriminator_args", settings.discriminator_args, DISCRIMINATORS["vgg"], ())
    discriminator = build_discriminator("vgg", **settings.discriminator_args)
    place_networks(runtime, generator, discriminator)
    nets = {"generator": generator, "discriminator": discriminator}
    opts = {name: optimizer(net.parameters(), lr) for (name, net), lr in zip(nets.items(), (settings.lr_g, settings.lr_d))}
    scheds = {name: make_scheduler(opt, settings.schedule, settings.steps, settings.milestones, settings.gamma)
              for name, opt in opts.items()}
    state = TrainState(nets, opts, scheds, make_ema(generator, settings.ema_decay))
    run = run_identity("gan", settings, common, runtime, dist.world, data, code or code_fingerprint(__file__),
                       init=init_digest)
    step_fn = partial(step, losses=make_losses(settings, kernels, runtime), runtime=runtime, dist=dist,
                      generator=wrap(generator, dist), discriminator=wrap(discriminator, dist))
    return Recipe("train_gan", state, step_fn, run)


def step(state: TrainState, lq: torch.Tensor, hr: torch.Tensor, *, generator: nn.Module, discriminator: nn.Module,
         losses: GanLosses, runtime: Runtime, dist: Dist) -> dict[str, float]:
    """One G update and one D update on a batch: lq (B, 3, h, w), hr (B, 3, sh, sw) in [0, 1].

    Returns every loss term and the mean D logits on real and fake images, averaged over processes. Under
    DDP the networks come wrapped (srcore.distributed.wrap); G's loss runs D unwrapped, as D's own gradients
    are not wanted there and DDP would otherwise wait for them.
    """
    g_terms, sr = generator_backward(generator, unwrap(discriminator), lq, hr, losses, runtime,
                                     state.optimizers["generator"])
    d_terms = discriminator_backward(discriminator, sr, hr, losses, runtime, state.optimizers["discriminator"])
    terms = mean_over_ranks({**g_terms, **d_terms}, dist, runtime.device)
    check_finite_losses(terms)
    state.optimizers["generator"].step()
    state.optimizers["discriminator"].step()
    state.ema.update_parameters(state.generator)
    return terms


def generator_backward(generator: nn.Module, frozen_d: nn.Module, lq: torch.Tensor, hr: torch.Tensor,
                       losses: GanLosses, runtime: Runtime, opt_g) -> tuple[dict[str, float], torch.Tensor]:
    """G's loss and gradients, D frozen; D's verdict on real images is a fixed reference (no gradient).
    Returns the G terms and the SR batch (fp32)."""
    frozen_d.requires_grad_(False)
    with autocast(runtime):
        sr = generator(lq)
        with torch.no_grad():
            real_logits, real_features = frozen_d(hr, return_features=True)
        fake_logits, fake_features = frozen_d(sr, return_features=True)
    sr = sr.float()
    pixel = losses.pixel(sr, hr)
    perceptual = perceptual_term(losses, sr, hr, real_features, fake_features, runtime)
    adversarial = generator_loss(losses.adversarial, real_logits.float(), fake_logits.float(), backend=losses.backend)
    total = losses.pixel_weight * pixel + losses.perceptual_weight * perceptual + losses.adversarial_weight * adversarial
    opt_g.zero_grad(set_to_none=True)
    total.backward()
    frozen_d.requires_grad_(True)
    terms = {"g/total": total.item(), "g/pixel": pixel.item(), "g/perceptual": perceptual.item(),
             "g/adversarial": adversarial.item()}
    return terms, sr


def discriminator_backward(discriminator: nn.Module, sr: torch.Tensor, hr: torch.Tensor, losses: GanLosses,
                           runtime: Runtime, opt_d) -> dict[str, float]:
    """D's loss and gradients; G's output is a fixed input (detached), so nothing flows back into G."""
    with autocast(runtime):
        real_logits = discriminator(hr)
        fake_logits = discriminator(sr.detach())
    loss = discriminator_loss(losses.adversarial, real_logits.float(), fake_logits.float(), backend=losses.backend)
    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    return {"d/loss": loss.item(), "d/real": real_logits.float().mean().item(),
            "d/fake": fake_logits.float().mean().item()}


def perceptual_term(losses: GanLosses, sr, hr, real_features, fake_features, runtime: Runtime) -> torch.Tensor:
    """The perceptual loss, a scalar. VGG19 runs under the runtime's autocast, as G and D do: in bf16 its
    loss moves by bf16 rounding only (tests/test_losses.py), at a fraction of the fp32 cost."""
    if losses.perceptual == "vgg":
        with autocast(runtime):
            return losses.vgg(sr, hr).float()
    if losses.perceptual == "feature_matching":
        return feature_matching_loss(real_features, fake_features)
    return sr.new_zeros(())
