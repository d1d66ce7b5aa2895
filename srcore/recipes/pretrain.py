"""The PSNR recipe: a generator trained on a pixel loss (L1 or MSE), with an EMA of its weights.

One step: forward under the runtime's autocast, the loss in fp32, the loss averaged over processes and
checked finite, then backward, optional gradient clipping, the optimizer and the EMA.

The lineage's recipes are options of this one:
- a Y-channel model (SRCNN, VDSR; arch_args colour "y") is scored on Y, as their papers train: the loss
  compares luma(SR) with luma(HR), and luma(SR) is exactly what the model's Y network produced;
- a multi-scale model (MDSR, VDSR, SRCNN with `scales`) runs each batch at the batch's own scale, read off its
  shapes (srcore.multiscale.batch_scale), so a data source may mix scales from batch to batch
  (srcore.mixed_scales);
- VDSR's high learning rate needs its adjustable gradient clipping (clip_gradients) and SGD with momentum.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import torch
from torch import nn

from srcore.config import check_kwargs
from srcore.distributed import Dist, check_batch_size, mean_over_ranks, wrap
from srcore.engine import Recipe, TrainState, adam, check_finite_losses, make_ema, make_scheduler
from srcore.losses import pixel_loss
from srcore.models import GENERATORS, build_generator
from srcore.imports import code_fingerprint
from srcore.multiscale import batch_scale, model_scales, takes_scale
from srcore.recipes import run_identity
from srcore.runtime import autocast, place_networks
from srcore.settings import CommonSettings, PretrainSettings, Runtime
from srcore.ychannel import is_luma_model, luma

OptimizerFn = Callable[[Iterable[nn.Parameter], float], torch.optim.Optimizer]


def make_optimizer(settings: PretrainSettings) -> OptimizerFn:
    """adam: the engine's Adam (0.9, 0.99); sgd: SGD with sgd_momentum and L2 sgd_weight_decay (SRCNN, VDSR)."""
    if settings.optimizer == "sgd":
        return partial(torch.optim.SGD, momentum=settings.sgd_momentum, weight_decay=settings.sgd_weight_decay)
    return adam


def build(settings: PretrainSettings, common: CommonSettings, runtime: Runtime, *, data: dict[str, str],
          kernels: str = "torch", dist: Dist = Dist(), code: str | None = None,
          optimizer: OptimizerFn | None = None) -> Recipe:
    """The pretrain run: a fresh generator (drawn from the global RNG), its optimizer, schedule and EMA.

    data: digests of the training data (srcore.recipes.data_digests); kernels: the resolved backend
    ("torch" or "triton"); code: the stage's code fingerprint (default: this module's import closure);
    optimizer: (params, lr) -> Optimizer, by default the one settings.optimizer names.
    """
    check_batch_size(settings.batch_size, dist, "pretrain")
    # scale comes from common.scale and kernels from runtime.kernels, never from generator_args.
    check_kwargs("pretrain.generator_args", settings.generator_args, GENERATORS[settings.generator],
                 ("scale", "kernels"))
    model = build_generator(settings.generator, scale=common.scale, kernels=kernels, **settings.generator_args)
    place_networks(runtime, model)
    opt = (optimizer or make_optimizer(settings))(model.parameters(), settings.lr)
    scheduler = make_scheduler(opt, settings.schedule, settings.steps, settings.milestones, settings.gamma)
    state = TrainState({"generator": model}, {"generator": opt}, {"generator": scheduler},
                       make_ema(model, settings.ema_decay))
    run = run_identity("pretrain", settings, common, runtime, dist.world, data, code or code_fingerprint(__file__))
    # A step at one scale leaves the other scales' parameters of a multi-scale model (MDSR's heads) unused.
    net = wrap(model, dist, unused_parameters=len(model_scales(model)) > 1)
    step_fn = partial(step, loss_fn=pixel_loss(settings.loss), net=net, runtime=runtime, dist=dist,
                      on_luma=is_luma_model(model), multiscale=takes_scale(model),
                      clip=None if settings.clip == "none" else (settings.clip, settings.clip_theta))
    return Recipe("pretrain", state, step_fn, run)


def step(state: TrainState, lq: torch.Tensor, hr: torch.Tensor, *, loss_fn: Callable, net: nn.Module,
         runtime: Runtime, dist: Dist, on_luma: bool = False, multiscale: bool = False,
         clip: tuple[str, float] | None = None) -> dict[str, float]:
    """One update: lq (B, 3, h, w), hr (B, 3, sh, sw) in [0, 1], on the device and in its memory format
    (under torchrun: this process's slice, and `net` the generator's DDP wrapper).

    on_luma: the loss compares Y (a Y-channel model); multiscale: pass the batch's scale to the model;
    clip: (mode, theta) for clip_gradients. Returns {"train/loss": the loss before the update, averaged over
    processes} (+ "train/grad_norm" before clipping, when clipping); a non-finite loss raises
    FloatingPointError before anything changes, on every process alike.
    """
    with autocast(runtime):
        sr = net(lq, scale=batch_scale(lq, hr)) if multiscale else net(lq)
    sr = sr.float()
    loss = loss_fn(luma(sr), luma(hr)) if on_luma else loss_fn(sr, hr)
    terms = mean_over_ranks({"train/loss": loss.item()}, dist, runtime.device)
    check_finite_losses(terms)
    optimizer = state.optimizers["generator"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:  # after backward, DDP's gradients are already averaged: every process clips alike
        terms["train/grad_norm"] = clip_gradients(state.generator.parameters(), *clip,
                                                  lr=optimizer.param_groups[0]["lr"])
    optimizer.step()
    state.ema.update_parameters(state.generator)
    return terms


def clip_gradients(parameters: Iterable[nn.Parameter], mode: str, theta: float, lr: float) -> float:
    """VDSR's adjustable gradient clipping: gradients bounded by theta / lr, lr the current learning rate, so
    that the step lr * g stays within theta however high lr starts and wherever the schedule takes it.

    mode "norm": the total 2-norm of all gradients is scaled down to at most theta / lr (as the common
    PyTorch VDSR does, there with a fixed bound); "value": every component is clamped to [-theta / lr,
    theta / lr] (the paper's rule). Returns the total gradient norm before clipping.
    """
    params = [p for p in parameters if p.grad is not None]
    bound = theta / lr
    if mode == "norm":
        return float(torch.nn.utils.clip_grad_norm_(params, bound))
    if mode != "value":
        raise ValueError(f"pretrain.clip must be none, norm or value, got {mode!r}")
    norm = float(torch.nn.utils.get_total_norm([p.grad for p in params]))
    torch.nn.utils.clip_grad_value_(params, bound)
    return norm
