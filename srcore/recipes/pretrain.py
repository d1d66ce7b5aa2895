"""The PSNR recipe: a generator trained on a pixel loss (L1 or MSE), with an EMA of its weights.

One step: forward under the runtime's autocast, the loss in fp32, the loss averaged over processes and
checked finite, then backward, Adam and the EMA.
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from srcore.config import check_kwargs
from srcore.distributed import Dist, check_batch_size, mean_over_ranks, wrap
from srcore.engine import Recipe, TrainState, adam, check_finite_losses, make_ema, make_scheduler
from srcore.losses import pixel_loss
from srcore.models import GENERATORS, build_generator
from srcore.imports import code_fingerprint
from srcore.recipes import run_identity
from srcore.runtime import autocast, place_networks
from srcore.settings import CommonSettings, PretrainSettings, Runtime


def build(settings: PretrainSettings, common: CommonSettings, runtime: Runtime, *, data: dict[str, str],
          kernels: str = "torch", dist: Dist = Dist(), code: str | None = None, optimizer=adam) -> Recipe:
    """The pretrain run: a fresh generator (drawn from the global RNG), its optimizer, schedule and EMA.

    data: digests of the training data (srcore.recipes.data_digests); kernels: the resolved backend
    ("torch" or "triton"); code: the stage's code fingerprint (default: this module's import closure);
    optimizer: (params, lr) -> Optimizer, Adam(0.9, 0.99) by default.
    """
    check_batch_size(settings.batch_size, dist, "pretrain")
    # scale comes from common.scale and kernels from runtime.kernels, never from generator_args.
    check_kwargs("pretrain.generator_args", settings.generator_args, GENERATORS[settings.generator],
                 ("scale", "kernels"))
    model = build_generator(settings.generator, scale=common.scale, kernels=kernels, **settings.generator_args)
    place_networks(runtime, model)
    opt = optimizer(model.parameters(), settings.lr)
    scheduler = make_scheduler(opt, settings.schedule, settings.steps, settings.milestones, settings.gamma)
    state = TrainState({"generator": model}, {"generator": opt}, {"generator": scheduler},
                       make_ema(model, settings.ema_decay))
    run = run_identity("pretrain", settings, common, runtime, dist.world, data, code or code_fingerprint(__file__))
    step_fn = partial(step, loss_fn=pixel_loss(settings.loss), net=wrap(model, dist), runtime=runtime, dist=dist)
    return Recipe("pretrain", state, step_fn, run)


def step(state: TrainState, lq: torch.Tensor, hr: torch.Tensor, *, loss_fn: nn.Module, net: nn.Module,
         runtime: Runtime, dist: Dist) -> dict[str, float]:
    """One update: lq (B, 3, h, w), hr (B, 3, sh, sw) in [0, 1], on the device and in its memory format
    (under torchrun: this process's slice, and `net` the generator's DDP wrapper).

    Returns {"train/loss": the loss before the update, averaged over processes}; a non-finite loss raises
    FloatingPointError before anything changes, on every process alike.
    """
    with autocast(runtime):
        sr = net(lq)
    loss = loss_fn(sr.float(), hr)
    terms = mean_over_ranks({"train/loss": loss.item()}, dist, runtime.device)
    check_finite_losses(terms)
    optimizer = state.optimizers["generator"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    state.ema.update_parameters(state.generator)
    return terms
