"""Fused 3x3 conv block, y = residual + scale * act(conv3x3(x, W) + b), forward and backward in Triton.

The device code is in `kernels.conv_block_kernels`; here are its tile configs, launchers, the autograd
Function and the plain function. Per call:
- forward: one kernel. The weight is used as a (3, 3, Cin, Cout) copy in the compute dtype (rows of Cout:
  16-byte async copies on a GPU), made once per weight version and dtype (`packed_weight`), which under
  autocast replaces the per-call cast autocast would make anyway.
- backward: dz = scale * dy * act'(z) (skipped for the identity, whose dz is dy), dx (the forward kernel on
  the packed weight read with reversed taps, through strides), dW split-K partials (the centre tap also
  sums db), and one reduction into dW's and db's own layout and dtype: 3-4 launches (+1 sum for PReLU).
  d residual = dy. Deterministic: no atomics, partials summed in a fixed order.
Layouts: NCHW or channels_last, read through strides; the output takes x's memory format. channels_last
is the fast layout (tiles contiguous along channels); NCHW gets smaller tiles, sized so that it does not
spill registers (see docs/kernels.md). Dtypes: fp32, fp16, bf16, accumulated in fp32; y takes x's dtype
promoted with the residual's. Under torch.autocast, x and W run in the autocast dtype (autocast's conv2d
rule) while gradients return in the inputs' own dtypes. An fp32 tl.dot uses TF32 exactly when PyTorch's
cuDNN convs may (`launch.tf32_enabled`). Under the CPU interpreter (TRITON_INTERPRET=1) tiles are upcast
to fp32 before tl.dot, whose numpy path mishandles bf16.
Tile configs are fixed (no autotuning, which needs a GPU): one K chunk is 128 bytes of channels, so every
dtype uses the same shared memory, at most `max_shared_bytes()` (96 KiB: it fits the ~99 KiB of
RTX 30/40-class cards as well as A100 and H100); channel tiles shrink for small channel counts.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
from torch.utils.weak import WeakIdKeyDictionary

from kernels.conv_block_kernels import act_bwd_kernel, conv3x3_dw_kernel, conv3x3_fwd_kernel, reduce_dw_kernel
from kernels.launch import (ACT_CODES, DTYPES, aligned, autocast_dtype, check_device, check_image_size,
                            dot_config, launches_on_input_device, memory_format)
from kernels.reference import ACTIVATIONS

EW_TILE, EW_MAX_BLOCK_C, EW_NUM_WARPS = 2048, 64, 4  # dz: elements per program (16 per thread), channels
DW_TARGET_PROGRAMS = 264  # dW splits the pixels so that ~2 programs run per SM (132 SMs on an H100 SXM)
REDUCE_BLOCK = 256


@dataclass(frozen=True)
class Tiles:
    """A GEMM tile config: (M x K) @ (K x N) per program, pipelined over `num_stages` K steps."""
    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int

    def shared_bytes(self, element_size: int) -> int:
        """Shared memory of the pipelined operand tiles: what the compiled kernel needs (compile report)."""
        return self.num_stages * (self.block_m * self.block_k + self.block_k * self.block_n) * element_size


def fwd_tiles(element_size: int, channels_last: bool) -> Tiles:
    """Forward and dx: 128 (channels_last) or 64 (NCHW) pixels x 64 output channels x 128 bytes of input
    channels, 8 warps. With 4 warps the 128-pixel tile took all 255 registers on sm_80 and spilled as dx;
    NCHW tiles gather pixel by pixel and spilled at 128 pixels, and as dx at 4 warps (compile report)."""
    return Tiles(128 if channels_last else 64, 64, 128 // element_size, 8, 3)


def dw_tiles(element_size: int, channels_last: bool) -> Tiles:
    """dW: 64 output x 64 input channels, 256 (channels_last) or 128 (NCHW) bytes of pixels per K step;
    NCHW's gathered tiles spilled on sm_80 with 4 warps."""
    if channels_last:
        return Tiles(64, 64, 256 // element_size, 4, 3)
    return Tiles(64, 64, 128 // element_size, 8, 3)


def max_shared_bytes() -> int:
    """The most shared memory any conv launch config asks for (every dtype and layout)."""
    return max(tiles(size, cl).shared_bytes(size) for tiles in (fwd_tiles, dw_tiles)
               for size in (2, 4) for cl in (True, False))


def channel_block(channels: int, cap: int) -> int:
    """Channel tile: the next power of two of `channels`, clamped to [16 (tl.dot's minimum), cap]."""
    return max(16, min(cap, triton.next_power_of_2(max(channels, 1))))


_PACKED: WeakIdKeyDictionary = WeakIdKeyDictionary()


def packed_weight(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """weight (Cout, Cin, 3, 3) as a (3, 3, Cin, Cout) contiguous tensor in dtype, one copy (cast and
    permute fused) per weight version: an optimizer step or load_state_dict makes a new one. (In-place
    writes through `.data` bypass the version counter, as they do for autograd's own checks.)"""
    version = (weight._version, dtype, weight.data_ptr())
    cached = _PACKED.get(weight)
    if cached is not None and cached[0] == version:
        return cached[1]
    with torch.no_grad():
        packed = torch.empty((3, 3, weight.shape[1], weight.shape[0]), device=weight.device, dtype=dtype)
        packed.copy_(weight.permute(2, 3, 1, 0))
    _PACKED[weight] = (version, packed)
    return packed


def forward_weight(packed: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """(pointer tensor, (N, K, kh, kw) strides) of the forward's weight: K = Cin, N = Cout."""
    s_kh, s_kw, s_ci, s_co = packed.stride()
    return packed, (s_co, s_ci, s_kh, s_kw)


def transposed_weight(packed: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """The same for dx = conv3x3(dz, W^T with reversed taps): K = Cout, N = Cin, tap (kh, kw) reads W's
    (2 - kh, 2 - kw). The pointer is tap (2, 2); negative tap strides walk back to (0, 0). No copy."""
    s_kh, s_kw, s_ci, s_co = packed.stride()
    return packed[2, 2], (s_ci, s_co, -s_kh, -s_kw)


@launches_on_input_device
def _conv_forward(x, weight, w_strides, c_out, bias, act, prelu_weight, negative_slope, residual, scale,
                  store_z, out_dtype=None):
    """Launch the forward kernel. x: (B, Cin, H, W), any strides; weight, w_strides: `forward_weight` or
    `transposed_weight` of a packed weight with Cout = c_out output channels.

    Returns y (B, Cout, H, W) in x's memory format, in out_dtype (default x's dtype promoted with the
    residual's), and if store_z the pre-activation z, (B, Cout, H, W) in x's dtype and memory format.
    """
    B, c_in, H, W = x.shape
    fmt = memory_format(x)
    if out_dtype is None:
        out_dtype = x.dtype if residual is None else torch.promote_types(x.dtype, residual.dtype)
    y = torch.empty((B, c_out, H, W), device=x.device, dtype=out_dtype, memory_format=fmt)
    z = torch.empty(y.shape, device=x.device, dtype=x.dtype, memory_format=fmt) if store_z else None
    if y.numel() == 0:
        return y, z
    res = residual if residual is not None else y  # unused pointers get any valid tensor
    alpha = prelu_weight if act == "prelu" else y
    s_alpha = 0 if alpha.numel() == 1 else alpha.stride(0)  # one shared PReLU weight: stride 0
    dot_fp32, precision = dot_config(x.dtype)
    t = fwd_tiles(x.element_size(), fmt == torch.channels_last)
    block_n, block_k = channel_block(c_out, t.block_n), channel_block(c_in, t.block_k)
    grid = (triton.cdiv(B * H * W, t.block_m), triton.cdiv(c_out, block_n))
    conv3x3_fwd_kernel[grid](
        x, weight, bias if bias is not None else y, alpha, res, y, z if store_z else y,
        B, c_in, c_out, H, W, *x.stride(), *w_strides, s_alpha, *res.stride(), *y.stride(),
        float(negative_slope), float(scale),
        ACT=ACT_CODES[act], HAS_BIAS=bias is not None, HAS_RES=residual is not None, STORE_Z=store_z,
        DOT_FP32=dot_fp32, PRECISION=precision, BLOCK_M=t.block_m, BLOCK_N=block_n, BLOCK_K=block_k,
        num_warps=t.num_warps, num_stages=t.num_stages)
    return y, z


@launches_on_input_device
def _act_backward(grad_y, z, prelu_weight, act, negative_slope, scale):
    """dz = scale * grad_y * act'(z) in z's dtype and layout, and d prelu_weight (fp32) or None.

    grad_y: (B, Cout, H, W), any strides; z: the saved pre-activation (act is not the identity).
    """
    B, C, H, W = grad_y.shape
    dz = torch.empty_like(z)
    block_c = min(EW_MAX_BLOCK_C, triton.next_power_of_2(max(C, 1)))
    block_p = EW_TILE // block_c
    n_tiles = triton.cdiv(B * H * W, block_p)
    da_part = torch.empty((n_tiles, C), device=dz.device, dtype=torch.float32) if act == "prelu" else dz
    alpha = prelu_weight if act == "prelu" else dz
    if dz.numel() > 0:
        act_bwd_kernel[(n_tiles, triton.cdiv(C, block_c))](
            grad_y, z, alpha, dz, da_part, B, C, H, W, *grad_y.stride(), *dz.stride(),
            0 if alpha.numel() == 1 else alpha.stride(0), float(negative_slope), float(scale),
            ACT=ACT_CODES[act], BLOCK_P=block_p, BLOCK_C=block_c, num_warps=EW_NUM_WARPS)
    if act != "prelu":
        return dz, None
    return dz, da_part.sum(0) if prelu_weight.numel() > 1 else da_part.sum().reshape(1)


@launches_on_input_device
def _conv_weight_grad(x, dz, scale, weight_dtype, bias_dtype):
    """(dW (Cout, Cin, 3, 3) in weight_dtype, db (Cout,) in bias_dtype or None when bias_dtype is None),
    each scaled by `scale`, from x: (B, Cin, H, W) and dz: (B, Cout, H, W), any strides."""
    B, c_in, H, W = x.shape
    c_out, n_pix = dz.shape[1], B * H * W
    dw = torch.empty((c_out, c_in, 3, 3), device=x.device, dtype=weight_dtype)
    db = torch.empty(c_out, device=x.device, dtype=bias_dtype) if bias_dtype is not None else None
    if n_pix == 0:
        return dw.zero_(), None if db is None else db.zero_()
    t = dw_tiles(x.element_size(), memory_format(x) == torch.channels_last)
    block_co, block_ci = channel_block(c_out, t.block_m), channel_block(c_in, t.block_n)
    tiles = triton.cdiv(c_out, block_co) * triton.cdiv(c_in, block_ci)
    splits = max(1, min(triton.cdiv(n_pix, t.block_k), triton.cdiv(DW_TARGET_PROGRAMS, tiles * 9)))
    pix_per_split = triton.cdiv(triton.cdiv(n_pix, splits), t.block_k) * t.block_k
    splits = triton.cdiv(n_pix, pix_per_split)
    row = 9 * c_out * c_in + (c_out if db is not None else 0)
    part = torch.empty((splits, row), device=x.device, dtype=torch.float32)
    dot_fp32, precision = dot_config(x.dtype)
    conv3x3_dw_kernel[(tiles, 9, splits)](
        x, dz, part, B, c_in, c_out, H, W, pix_per_split, row, *x.stride(), *dz.stride(),
        WITH_DB=db is not None, DOT_FP32=dot_fp32, PRECISION=precision,
        BLOCK_CO=block_co, BLOCK_CI=block_ci, BLOCK_P=t.block_k, num_warps=t.num_warps, num_stages=t.num_stages)
    reduce_dw_kernel[(triton.cdiv(row, REDUCE_BLOCK),)](
        part, dw, db if db is not None else dw, splits, c_in, c_out, row, float(scale),
        WITH_DB=db is not None, BLOCK=REDUCE_BLOCK)
    return dw, db


def _fused_forward(x, weight, bias, prelu_weight, residual, act, negative_slope, scale, dtype, store_z):
    """(y, z or None, x in the compute dtype, packed weight): the forward with x and W in `dtype`."""
    xc = aligned(x).to(dtype)  # one copy at most, kept for dW
    packed = packed_weight(weight, dtype)
    y, z = _conv_forward(xc, *forward_weight(packed), weight.shape[0], bias, act, prelu_weight, negative_slope,
                         aligned(residual), scale, store_z)
    return y, z, xc, packed


class Conv3x3Act(torch.autograd.Function):
    """Autograd for the fused block; gradients for x, weight, bias, prelu_weight and residual, each in its
    own dtype. `dtype` is the compute dtype (x's, or autocast's)."""

    @staticmethod
    def forward(ctx, x, weight, bias, prelu_weight, residual, act, negative_slope, scale, dtype):
        y, z, xc, packed = _fused_forward(x, weight, bias, prelu_weight, residual, act, negative_slope, scale,
                                          dtype, store_z=act != "identity")
        ctx.save_for_backward(xc, packed, z, prelu_weight if act == "prelu" else None)
        ctx.act, ctx.negative_slope, ctx.scale = act, negative_slope, scale
        ctx.dtypes = tuple(None if t is None else t.dtype for t in (x, weight, bias, residual))
        return y

    @staticmethod
    def backward(ctx, grad_y):
        xc, packed, z, prelu_weight = ctx.saved_tensors
        x_dtype, w_dtype, b_dtype, res_dtype = ctx.dtypes
        need_x, need_w, need_b, need_alpha, need_res = ctx.needs_input_grad[:5]
        grad_y = aligned(grad_y)
        # The identity's dz is grad_y itself: its scale goes into the dx and dW launches instead.
        dz, d_alpha, scale = grad_y, None, ctx.scale
        if ctx.act != "identity":
            dz, d_alpha = _act_backward(grad_y, z, prelu_weight, ctx.act, ctx.negative_slope, ctx.scale)
            scale = 1.0
        dx = dw = db = None
        if need_x:
            dx = _conv_forward(dz, *transposed_weight(packed), xc.shape[1], None, "identity", None, 0.0, None,
                               scale, store_z=False, out_dtype=x_dtype)[0]
        if need_w:
            dw, db = _conv_weight_grad(xc, dz, scale, w_dtype, b_dtype if need_b else None)
        elif need_b:
            db = (dz.sum((0, 2, 3), dtype=torch.float32) * scale).to(b_dtype)
        if need_alpha and d_alpha is not None:
            d_alpha = d_alpha.reshape(prelu_weight.shape).to(prelu_weight.dtype)
        else:
            d_alpha = None
        d_res = grad_y.to(res_dtype) if need_res else None
        return dx, dw, db, d_alpha, d_res, None, None, None, None


def _check_inputs(x, weight, bias, act, prelu_weight, residual, autocast: bool) -> None:
    """ValueError naming the bad argument: act name, shapes, dtypes, devices."""
    if act not in ACT_CODES:
        raise ValueError(f"unknown activation {act!r}; valid: {', '.join(ACTIVATIONS)}")
    if x.dim() != 4:
        raise ValueError(f"conv3x3_act: x must be (B, Cin, H, W), got shape {tuple(x.shape)}")
    for name, t in (("x", x), ("weight", weight), ("residual", residual)):
        if t is not None and t.dtype not in DTYPES:
            raise ValueError(f"conv3x3_act: {name} dtype {t.dtype} not supported; valid: {DTYPES}")
    check_device("conv3x3_act: x", x)
    check_image_size("conv3x3_act: x", x)
    B, c_in, H, W = x.shape
    c_out = weight.shape[0] if weight.dim() == 4 else -1
    if weight.shape != (c_out, c_in, 3, 3):
        raise ValueError(f"conv3x3_act: weight must be (Cout, {c_in}, 3, 3) for x {tuple(x.shape)}, "
                         f"got {tuple(weight.shape)}")
    if act == "prelu" and prelu_weight is None:
        raise ValueError("act='prelu' needs prelu_weight")
    if act == "prelu" and prelu_weight.numel() not in (1, c_out):
        raise ValueError(f"conv3x3_act: prelu_weight must hold 1 or Cout={c_out} values, got shape "
                         f"{tuple(prelu_weight.shape)}")
    for name, t, shape in (("bias", bias, (c_out,)), ("residual", residual, (B, c_out, H, W))):
        if t is not None and t.shape != shape:
            raise ValueError(f"conv3x3_act: {name} must have shape {shape}, got {tuple(t.shape)}")
    if weight.dtype != x.dtype and not autocast:
        raise ValueError(f"conv3x3_act: weight dtype {weight.dtype} differs from x's {x.dtype}")
    for name, t in (("weight", weight), ("bias", bias), ("prelu_weight", prelu_weight), ("residual", residual)):
        if t is not None and t.device != x.device:
            raise ValueError(f"conv3x3_act: {name} is on {t.device}, x on {x.device}")


def conv3x3_act(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, act: str = "identity",
                prelu_weight: torch.Tensor | None = None, negative_slope: float = 0.2,
                residual: torch.Tensor | None = None, scale: float = 1.0) -> torch.Tensor:
    """y = residual + scale * act(conv3x3(x, weight) + bias), stride 1, padding 1 (Triton).

    x: (B, Cin, H, W) fp32/fp16/bf16, NCHW or channels_last; weight: (Cout, Cin, 3, 3) in x's dtype;
    bias: (Cout,) or None; prelu_weight: (Cout,) or (1,) for act='prelu'; residual: (B, Cout, H, W) or None.
    Returns (B, Cout, H, W) in x's memory format, in x's dtype promoted with the residual's. Under autocast
    x and weight run in its dtype (as autocast does for conv2d), whatever their own. Same contract as
    `kernels.reference.conv3x3_act`.
    """
    cast = autocast_dtype(x)
    autocast = cast is not None and x.dtype in DTYPES  # autocast's rule for conv2d: it leaves fp64 alone
    _check_inputs(x, weight, bias, act, prelu_weight, residual, autocast)
    dtype = cast if autocast else x.dtype
    tensors = (x, weight, bias, prelu_weight, residual)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return Conv3x3Act.apply(x, weight, bias, prelu_weight, residual, act, negative_slope, scale, dtype)
    with torch.no_grad():
        return _fused_forward(x, weight, bias, prelu_weight, residual, act, negative_slope, scale, dtype,
                              store_z=False)[0]
