"""Pixel shuffle fused with its activation, y = act(pixel_shuffle(x, r)), forward and backward in Triton.

x: (B, C*r*r, H, W) -> y: (B, C, H*r, W*r), y[b, c, h*r+i, w*r+j] = act(x[b, c*r*r + i*r + j, h, w]).
Both kernels walk tiles of (output pixels x output channels) and gather/scatter the matching input
elements, so the backward needs no saved pre-activation: it is x itself. The backward writes
dx = dy * act'(x) at the input positions and per-tile channel sums of dy * min(x, 0) for the PReLU
weight's grad (one weight per *output* channel, as SRGAN's upsampler; summed over tiles in torch).
Layouts: NCHW or channels_last through strides; outputs take x's memory format. Dtypes: fp32, fp16, bf16,
computed in fp32 (under autocast a PReLU first casts x to the autocast dtype, as autocast's prelu does).
r is a compile-time constant (one compiled kernel per r; SR uses 2 and 3).
Tiles hold a fixed TILE elements (bandwidth-bound): up to 64 output channels, the rest pixels.
The activation helpers and launch rules are `kernels.launch`'s, shared with the conv block, so both ops
agree on act(0), act'(0) and NaN; launches run on the input's device, a misaligned input is copied once.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.launch import (ACT_CODES, DTYPES, act_derivative, act_forward, aligned, autocast_dtype, check_device,
                            check_image_size, launches_on_input_device, memory_format, pixel_offsets)
from kernels.reference import ACTIVATIONS

TILE, MAX_BLOCK_C = 2048, 64  # elements per program (16 per thread: NCHW gathers stay in registers); channels
NUM_WARPS = 4


@triton.jit
def _shuffle_offsets(p, c, B, C, H, W, sxb, sxc, sxh, sxw, syb, syc, syh, syw,
                     R: tl.constexpr):
    """Offsets into x and y, and the mask, for output pixels p (flat over B*Hr*Wr) and output channels c."""
    HO, WO = H * R, W * R
    b, oh, ow = p // (HO * WO), (p % (HO * WO)) // WO, p % WO
    x_pix = b.to(tl.int64) * sxb + (oh // R) * sxh + (ow // R) * sxw + ((oh % R) * R + ow % R) * sxc
    x_offs = x_pix[:, None] + c[None, :] * (R * R * sxc)  # input channel c*r*r + i*r + j
    y_offs = pixel_offsets(p, HO, WO, syb, syh, syw)[:, None] + c[None, :] * syc
    mask = (p < B * HO * WO)[:, None] & (c < C)[None, :]
    return x_offs, y_offs, mask


@triton.jit
def _pixel_shuffle_fwd_kernel(
        x_ptr, alpha_ptr, y_ptr, B, C, H, W,
        sxb, sxc, sxh, sxw, syb, syc, syh, syw, s_alpha, negative_slope,
        R: tl.constexpr, ACT: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    x_offs, y_offs, mask = _shuffle_offsets(p, c, B, C, H, W, sxb, sxc, sxh, sxw, syb, syc, syh, syw, R)
    v = tl.load(x_ptr + x_offs, mask=mask, other=0.0).to(tl.float32)
    alpha = 0.0
    if ACT == 3:
        alpha = tl.load(alpha_ptr + c * s_alpha, mask=c < C, other=0.0).to(tl.float32)[None, :]
    y = act_forward(v, alpha, negative_slope, ACT)
    tl.store(y_ptr + y_offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _pixel_shuffle_bwd_kernel(
        g_ptr, x_ptr, alpha_ptr, dx_ptr, da_part_ptr, B, C, H, W,
        sgb, sgc, sgh, sgw, sxb, sxc, sxh, sxw, sdb, sdc, sdh, sdw, s_alpha, negative_slope,
        R: tl.constexpr, ACT: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """dx = dy * act'(x); da_part[tile, c] = sum over the tile of dy * min(x, 0)."""
    pid_p = tl.program_id(0)
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    x_offs, g_offs, mask = _shuffle_offsets(p, c, B, C, H, W, sxb, sxc, sxh, sxw, sgb, sgc, sgh, sgw, R)
    dx_offs, _, _ = _shuffle_offsets(p, c, B, C, H, W, sdb, sdc, sdh, sdw, sgb, sgc, sgh, sgw, R)
    g = tl.load(g_ptr + g_offs, mask=mask, other=0.0).to(tl.float32)
    v = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    if ACT != 0:
        v = tl.load(x_ptr + x_offs, mask=mask, other=0.0).to(tl.float32)
    alpha = 0.0
    if ACT == 3:
        alpha = tl.load(alpha_ptr + c * s_alpha, mask=c < C, other=0.0).to(tl.float32)[None, :]
    dx = g * act_derivative(v, alpha, negative_slope, ACT)
    tl.store(dx_ptr + dx_offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)
    if ACT == 3:
        tl.store(da_part_ptr + pid_p * C + c, tl.sum(tl.where(v > 0, 0.0, v * g), axis=0), mask=c < C)


def _blocks(B: int, C: int, H: int, W: int, r: int) -> tuple[tuple[int, int], dict[str, int]]:
    """(grid, block sizes): tiles of TILE elements, few channels -> more pixels per tile."""
    block_c = min(MAX_BLOCK_C, triton.next_power_of_2(max(C, 1)))
    block_p = TILE // block_c
    grid = (triton.cdiv(B * H * r * W * r, block_p), triton.cdiv(C, block_c))
    return grid, dict(BLOCK_P=block_p, BLOCK_C=block_c)


@launches_on_input_device
def _shuffle_forward(x, upscale, act, prelu_weight, negative_slope):
    """Launch the forward: x (B, C*r*r, H, W) -> (B, C, H*r, W*r) in x's dtype and memory format."""
    B, c_in, H, W = x.shape
    C = c_in // upscale**2
    y = torch.empty((B, C, H * upscale, W * upscale), device=x.device, dtype=x.dtype,
                    memory_format=memory_format(x))
    if y.numel() == 0:
        return y
    alpha = prelu_weight if act == "prelu" else y
    grid, blocks = _blocks(B, C, H, W, upscale)
    _pixel_shuffle_fwd_kernel[grid](
        x, alpha, y, B, C, H, W, *x.stride(), *y.stride(), 0 if alpha.numel() == 1 else alpha.stride(0),
        float(negative_slope), R=upscale, ACT=ACT_CODES[act], **blocks, num_warps=NUM_WARPS)
    return y


@launches_on_input_device
def _shuffle_backward(grad_y, x, upscale, act, prelu_weight, negative_slope, dtype, fmt):
    """(dx (B, C*r*r, H, W) in dtype and memory format fmt, d prelu_weight in fp32 shaped like it, or None).

    grad_y: (B, C, H*r, W*r), any strides; x: the forward's input (None for identity, which never reads it).
    """
    B, C, H, W = grad_y.shape[0], grad_y.shape[1], grad_y.shape[2] // upscale, grad_y.shape[3] // upscale
    dx = torch.empty((B, C * upscale**2, H, W), device=grad_y.device, dtype=dtype, memory_format=fmt)
    x = dx if x is None else x
    grid, blocks = _blocks(B, C, H, W, upscale)
    da_part = torch.empty((grid[0], C), device=dx.device, dtype=torch.float32)
    alpha = prelu_weight if act == "prelu" else dx
    if dx.numel() > 0:
        _pixel_shuffle_bwd_kernel[grid](
            grad_y, x, alpha, dx, da_part, B, C, H, W, *grad_y.stride(), *x.stride(), *dx.stride(),
            0 if alpha.numel() == 1 else alpha.stride(0), float(negative_slope),
            R=upscale, ACT=ACT_CODES[act], **blocks, num_warps=NUM_WARPS)
    if act != "prelu":
        return dx, None
    d_alpha = da_part.sum(0) if prelu_weight.numel() > 1 else da_part.sum()
    return dx, d_alpha.reshape(prelu_weight.shape)


class PixelShuffleAct(torch.autograd.Function):
    """Autograd for act(pixel_shuffle(x, r)); gradients for x and the PReLU weight."""

    @staticmethod
    def forward(ctx, x, upscale, act, prelu_weight, negative_slope):
        # The identity's backward is a plain unshuffle: keep x alive only when act'(x) needs it.
        ctx.save_for_backward(x if act != "identity" else None, prelu_weight if act == "prelu" else None)
        ctx.upscale, ctx.act, ctx.negative_slope = upscale, act, negative_slope
        ctx.x_dtype, ctx.x_format = x.dtype, memory_format(x)
        return _shuffle_forward(x, upscale, act, prelu_weight, negative_slope)

    @staticmethod
    def backward(ctx, grad_y):
        x, prelu_weight = ctx.saved_tensors
        dx, d_alpha = _shuffle_backward(aligned(grad_y), x, ctx.upscale, ctx.act, prelu_weight, ctx.negative_slope,
                                        ctx.x_dtype, ctx.x_format)
        need_x, _, _, need_alpha, _ = ctx.needs_input_grad
        dx = dx if need_x else None
        d_alpha = d_alpha.to(prelu_weight.dtype) if need_alpha and d_alpha is not None else None
        return dx, None, None, d_alpha, None


def _check_inputs(x, upscale, act, prelu_weight) -> None:
    """ValueError naming the bad argument: act name, upscale, shapes, dtypes, devices."""
    if act not in ACT_CODES:
        raise ValueError(f"unknown activation {act!r}; valid: {', '.join(ACTIVATIONS)}")
    if isinstance(upscale, bool) or not isinstance(upscale, int) or upscale < 1:
        raise ValueError(f"pixel_shuffle_act: upscale must be a positive int, got {upscale!r}")
    if x.dim() != 4 or x.shape[1] % upscale**2:
        raise ValueError(f"pixel_shuffle_act: x must be (B, C*{upscale}*{upscale}, H, W), got {tuple(x.shape)}")
    if x.dtype not in DTYPES:
        raise ValueError(f"pixel_shuffle_act: x dtype {x.dtype} not supported; valid: {DTYPES}")
    check_device("pixel_shuffle_act: x", x)
    check_image_size("pixel_shuffle_act: x", x)
    if act != "prelu":
        return
    c_out = x.shape[1] // upscale**2
    if prelu_weight is None:
        raise ValueError("act='prelu' needs prelu_weight")
    if prelu_weight.numel() not in (1, c_out):
        raise ValueError(f"pixel_shuffle_act: prelu_weight must hold 1 or C={c_out} values (one per output "
                         f"channel), got shape {tuple(prelu_weight.shape)}")
    if prelu_weight.device != x.device:
        raise ValueError(f"pixel_shuffle_act: prelu_weight is on {prelu_weight.device}, x on {x.device}")


def pixel_shuffle_act(x: torch.Tensor, upscale: int, *, act: str = "identity",
                      prelu_weight: torch.Tensor | None = None, negative_slope: float = 0.2) -> torch.Tensor:
    """act(pixel_shuffle(x, upscale)) (Triton): x (B, C*r*r, H, W) -> (B, C, H*r, W*r), x's dtype and format.

    x: fp32/fp16/bf16, NCHW or channels_last; prelu_weight: (C,) or (1,) for act='prelu', indexing the
    output channels. Under autocast a PReLU casts x to its dtype first, as autocast does for prelu. Same
    contract as `kernels.reference.pixel_shuffle_act`.
    """
    cast = autocast_dtype(x)
    if act == "prelu" and cast is not None and x.dtype in DTYPES:
        x = x.to(cast)
    _check_inputs(x, upscale, act, prelu_weight)
    x = aligned(x)  # an input off a 16-byte boundary would compile without any alignment hints
    needs_grad = x.requires_grad or (act == "prelu" and prelu_weight.requires_grad)
    if torch.is_grad_enabled() and needs_grad:
        return PixelShuffleAct.apply(x, upscale, act, prelu_weight, negative_slope)
    return _shuffle_forward(x, upscale, act, prelu_weight, negative_slope)
