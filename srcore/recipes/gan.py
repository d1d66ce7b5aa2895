"""The GAN recipe (SRGAN / ESRGAN): fine-tune a PSNR-trained generator G against a VGG-style discriminator D.

G's loss is  pixel_weight * pixel + perceptual_weight * perceptual + adversarial_weight * adversarial,
D's the adversarial loss, with the papers' detach semantics (see srcore.losses). The perceptual term is
ESRGAN's VGG19 loss when local VGG19 weights are given, discriminator feature matching (no pretrained
weights: the offline default), or nothing. One step computes both networks' losses and gradients, checks
every loss finite, and only then updates G, D and the EMA of G.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from srcore.config import check_kwargs
from srcore.discriminator import DISCRIMINATORS, build_discriminator
from srcore.distributed import Dist, check_batch_size, mean_over_ranks, wrap
from srcore.engine import Recipe, TrainState, adam, check_finite_losses, make_ema, make_scheduler
from srcore.losses import (VGGPerceptualLoss, discriminator_loss, feature_matching_loss, generator_loss,
                           pixel_loss)
from srcore.imports import code_fingerprint
from srcore.recipes import run_identity
from srcore.runtime import autocast, place_networks
from srcore.settings import CommonSettings, GanSettings, Runtime


@dataclass
class GanLosses:
    """The loss terms of one run, built once: the VGG module (perceptual: vgg) is reused every step."""
    pixel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
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

    D runs once on the real and once on the fake batch, and both losses read those two passes: G's loss
    back-propagates into G's parameters only (D frozen, its verdict on real images a fixed reference), D's
    loss into D's parameters only (G's output a fixed input). That is the textbook step's arithmetic, which
    runs D four times (BasicSR's ESRGANModel five), in two passes (`tests/test_gan.py` checks the two agree).
    Under DDP the networks come wrapped (srcore.distributed.wrap), so each backward averages its own
    network's gradients over processes.

    Returns every loss term and the mean D logits on real and fake images, averaged over processes.
    """
    with autocast(runtime):
        sr = generator(lq)
        real_logits, real_features = discriminator(hr, return_features=True)
        fake_logits, fake_features = discriminator(sr, return_features=True)
    sr, real_logits, fake_logits = sr.float(), real_logits.float(), fake_logits.float()
    g_loss, g_terms = generator_loss_terms(losses, sr, hr, real_logits.detach(), fake_logits,
                                           [f.detach() for f in real_features], fake_features, runtime)
    d_loss = discriminator_loss(losses.adversarial, real_logits, fake_logits, backend=losses.backend)
    for opt in state.optimizers.values():
        opt.zero_grad(set_to_none=True)
    # `inputs` limits each backward to one network's parameters: autograd then skips D's weight gradients in
    # G's backward and every gradient into G in D's. G's backward keeps the graph D's backward goes on through.
    g_params = list(state.generator.parameters())
    d_params = list(state.networks["discriminator"].parameters())
    torch.autograd.backward(g_loss, inputs=g_params, retain_graph=True)
    torch.autograd.backward(d_loss, inputs=d_params)
    d_terms = {"d/loss": d_loss.item(), "d/real": real_logits.mean().item(), "d/fake": fake_logits.mean().item()}
    terms = mean_over_ranks({**g_terms, **d_terms}, dist, runtime.device)
    check_finite_losses(terms)
    state.optimizers["generator"].step()
    state.optimizers["discriminator"].step()
    state.ema.update_parameters(state.generator)
    return terms


def generator_loss_terms(losses: GanLosses, sr: torch.Tensor, hr: torch.Tensor, real_logits: torch.Tensor,
                         fake_logits: torch.Tensor, real_features: list[torch.Tensor],
                         fake_features: list[torch.Tensor], runtime: Runtime) -> tuple[torch.Tensor, dict[str, float]]:
    """G's weighted total loss (a scalar) and its terms. sr: G's output (fp32); real_logits and real_features:
    D on hr, detached; fake_logits and fake_features: D on sr, with the graph back into G."""
    pixel = losses.pixel(sr, hr)
    perceptual = perceptual_term(losses, sr, hr, real_features, fake_features, runtime)
    adversarial = generator_loss(losses.adversarial, real_logits, fake_logits, backend=losses.backend)
    total = losses.pixel_weight * pixel + losses.perceptual_weight * perceptual + losses.adversarial_weight * adversarial
    return total, {"g/total": total.item(), "g/pixel": pixel.item(), "g/perceptual": perceptual.item(),
                   "g/adversarial": adversarial.item()}


def perceptual_term(losses: GanLosses, sr, hr, real_features, fake_features, runtime: Runtime) -> torch.Tensor:
    """The perceptual loss, a scalar. VGG19 runs under the runtime's autocast, as G and D do: in bf16 its
    loss moves by bf16 rounding only (tests/test_losses.py), at a fraction of the fp32 cost."""
    if losses.perceptual == "vgg":
        with autocast(runtime):
            return losses.vgg(sr, hr).float()
    if losses.perceptual == "feature_matching":
        return feature_matching_loss(real_features, fake_features)
    return sr.new_zeros(())
