"""Relativistic average GAN loss (ESRGAN), fused: one kernel launch forward, one backward.

With s = -1 for target 'd' and +1 for 'g', u_i = s (r_i - mean f) and v_j = -s (f_j - mean r), the loss is
    L = 1/2 [ mean_i softplus(u_i) + mean_j softplus(v_j) ]
which is `kernels.reference.ragan_loss` (BCE with logits against labels 1/0 is softplus(-x)/softplus(x)).
Forward: a single program makes two passes, first the two means, then the softplus sums (in the stable form
max(x, 0) + log1p(exp(-|x|))) and the sigmoid sums S_r = sum sigmoid(u_i), S_f = sum sigmoid(v_j) that the
backward needs; fp32 throughout, in a fixed order (deterministic). The loops pipeline their loads
(`tl.range(..., num_stages=LOAD_STAGES)`: async copies issued ahead, which the compile report checks).
Discriminator logits are few (one per image, or a patch map of ~1e4-1e5), where one program is
launch-bound; a single program does not scale to millions of logits (one SM's bandwidth), which would
need a grid-wide reduction and a third launch.
Backward, one elementwise launch over both inputs:
    dL/dr_k = dL * s / (2 Nr) * (sigmoid(u_k) + S_f / Nf)
    dL/df_k = -dL * s / (2 Nf) * (sigmoid(v_k) + S_r / Nr)
(the second terms come through the means). Gradients flow to both inputs; detaching is the caller's job.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.launch import DTYPES, aligned, autocast_dtype, check_device, launches_on_input_device

FWD_BLOCK, BWD_BLOCK = 1024, 1024
NUM_WARPS = 4
# The forward's loops have no tl.dot, so the kernel-level num_stages pipelines nothing there: each loop asks
# for its own software pipelining (loads issued LOAD_STAGES - 1 iterations ahead, as async copies).
LOAD_STAGES = tl.constexpr(3)
SIGNS = {"d": -1.0, "g": 1.0}  # s: the sign of (real - mean fake) inside the real term's softplus


@triton.jit
def _softplus_sigmoid(x):
    """(log(1 + exp(x)), sigmoid(x)) without overflow, from one exp(-|x|); log1p by Kahan's trick."""
    t = tl.exp(-tl.abs(x))  # in (0, 1]
    one_t = 1.0 + t
    log1p_t = tl.where(one_t == 1.0, t, tl.log(one_t) * t / tl.where(one_t == 1.0, 1.0, one_t - 1.0))
    return tl.maximum(x, 0.0) + log1p_t, tl.where(x >= 0, 1.0, t) / one_t


@triton.jit
def _sum(ptr, n, BLOCK: tl.constexpr):
    """fp32 sum of ptr[0:n]."""
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for start in tl.range(0, n, BLOCK, num_stages=LOAD_STAGES):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(ptr + offs, mask=offs < n, other=0.0).to(tl.float32)
    return tl.sum(acc, axis=0)


@triton.jit
def _softplus_sigmoid_sums(ptr, n, shift, sign, BLOCK: tl.constexpr):
    """(sum softplus(sign * (x - shift)), sum sigmoid(sign * (x - shift))) over ptr[0:n], fp32."""
    acc_sp = tl.zeros((BLOCK,), dtype=tl.float32)
    acc_sg = tl.zeros((BLOCK,), dtype=tl.float32)
    for start in tl.range(0, n, BLOCK, num_stages=LOAD_STAGES):
        offs = start + tl.arange(0, BLOCK)
        ok = offs < n
        sp, sg = _softplus_sigmoid(sign * (tl.load(ptr + offs, mask=ok, other=0.0).to(tl.float32) - shift))
        acc_sp += tl.where(ok, sp, 0.0)
        acc_sg += tl.where(ok, sg, 0.0)
    return tl.sum(acc_sp, axis=0), tl.sum(acc_sg, axis=0)


@triton.jit
def _ragan_fwd_kernel(real_ptr, fake_ptr, loss_ptr, stats_ptr, n_real, n_fake, sign, BLOCK: tl.constexpr):
    """loss_ptr[0] = L; stats_ptr[0:4] = (S_r, S_f, mean r, mean f) for the backward. One program."""
    mean_real = _sum(real_ptr, n_real, BLOCK) / n_real
    mean_fake = _sum(fake_ptr, n_fake, BLOCK) / n_fake
    sp_real, sg_real = _softplus_sigmoid_sums(real_ptr, n_real, mean_fake, sign, BLOCK)
    sp_fake, sg_fake = _softplus_sigmoid_sums(fake_ptr, n_fake, mean_real, -sign, BLOCK)
    loss = 0.5 * (sp_real / n_real + sp_fake / n_fake)
    tl.store(loss_ptr, loss.to(loss_ptr.dtype.element_ty))
    tl.store(stats_ptr, sg_real)
    tl.store(stats_ptr + 1, sg_fake)
    tl.store(stats_ptr + 2, mean_real)
    tl.store(stats_ptr + 3, mean_fake)


@triton.jit
def _ragan_bwd_kernel(real_ptr, fake_ptr, stats_ptr, grad_ptr, d_real_ptr, d_fake_ptr, n_real, n_fake, sign,
                      BLOCK: tl.constexpr):
    """d_real, d_fake from the saved stats (S_r, S_f, mean r, mean f) and the loss's grad (a 0-d tensor)."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    g = tl.load(grad_ptr).to(tl.float32)
    sg_real, sg_fake = tl.load(stats_ptr), tl.load(stats_ptr + 1)
    mean_real, mean_fake = tl.load(stats_ptr + 2), tl.load(stats_ptr + 3)
    ok = offs < n_real
    _, sig_u = _softplus_sigmoid(sign * (tl.load(real_ptr + offs, mask=ok, other=0.0).to(tl.float32) - mean_fake))
    d_real = g * sign * 0.5 / n_real * (sig_u + sg_fake / n_fake)
    tl.store(d_real_ptr + offs, d_real.to(d_real_ptr.dtype.element_ty), mask=ok)
    ok = offs < n_fake
    _, sig_v = _softplus_sigmoid(-sign * (tl.load(fake_ptr + offs, mask=ok, other=0.0).to(tl.float32) - mean_real))
    d_fake = -g * sign * 0.5 / n_fake * (sig_v + sg_real / n_real)
    tl.store(d_fake_ptr + offs, d_fake.to(d_fake_ptr.dtype.element_ty), mask=ok)


@launches_on_input_device
def _forward(real, fake, sign, loss_dtype):
    """(loss, stats) for flat logits; stats = (S_r, S_f, mean r, mean f) fp32, for the backward."""
    loss = torch.empty((), device=real.device, dtype=loss_dtype)
    stats = torch.empty(4, device=real.device, dtype=torch.float32)
    _ragan_fwd_kernel[(1,)](real, fake, loss, stats, real.numel(), fake.numel(), sign,
                            BLOCK=FWD_BLOCK, num_warps=NUM_WARPS)
    return loss, stats


@launches_on_input_device
def _backward(real, fake, stats, grad_loss, sign):
    """(d_real, d_fake) in the logits' dtypes."""
    d_real, d_fake = torch.empty_like(real), torch.empty_like(fake)
    grid = (triton.cdiv(max(real.numel(), fake.numel()), BWD_BLOCK),)
    _ragan_bwd_kernel[grid](real, fake, stats, grad_loss, d_real, d_fake, real.numel(), fake.numel(), sign,
                            BLOCK=BWD_BLOCK, num_warps=NUM_WARPS)
    return d_real, d_fake


class RaganLoss(torch.autograd.Function):
    """Autograd for the fused loss; inputs are flat (N,) views, gradients go to both."""

    @staticmethod
    def forward(ctx, real, fake, sign, loss_dtype):
        loss, stats = _forward(real, fake, sign, loss_dtype)
        ctx.save_for_backward(real, fake, stats)
        ctx.sign = sign
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        real, fake, stats = ctx.saved_tensors
        return (*_backward(real, fake, stats, grad_loss, ctx.sign), None, None)


def _check_logits(name: str, t: torch.Tensor) -> None:
    if t.numel() == 0 or t.dtype not in DTYPES:
        raise ValueError(f"ragan_loss: {name} must be non-empty logits in {DTYPES}, got shape "
                         f"{tuple(t.shape)} {t.dtype}")
    check_device(f"ragan_loss: {name}", t)


def ragan_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, target: str) -> torch.Tensor:
    """Relativistic average GAN loss (Triton), a 0-d tensor in the inputs' promoted dtype (fp32 under
    autocast, whose BCE-with-logits runs in fp32).

    real_logits, fake_logits: raw logits, (B,) or (B, 1) (any shape; all elements are averaged), fp32/fp16/
    bf16, same device. target: 'd' (real -> 1, fake -> 0) or 'g' (the reverse). Same contract as
    `kernels.reference.ragan_loss`.
    """
    if target not in SIGNS:
        raise ValueError(f"ragan_loss target must be 'd' or 'g', got {target!r}")
    _check_logits("real_logits", real_logits)
    _check_logits("fake_logits", fake_logits)
    if real_logits.device != fake_logits.device:
        raise ValueError(f"ragan_loss: real_logits on {real_logits.device}, fake_logits on {fake_logits.device}")
    loss_dtype = torch.promote_types(real_logits.dtype, fake_logits.dtype)
    if autocast_dtype(real_logits) is not None:
        loss_dtype = torch.float32
    # Flat contiguous (N,) views (copies only if strided); autograd reshapes the gradients back.
    return RaganLoss.apply(aligned(real_logits.reshape(-1).contiguous()),
                           aligned(fake_logits.reshape(-1).contiguous()), SIGNS[target], loss_dtype)
