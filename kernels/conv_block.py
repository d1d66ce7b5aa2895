"""Fused 3x3 conv block, y = residual + scale * act(conv3x3(x, W) + b), forward and backward in Triton.

Forward: one implicit-GEMM kernel, (B*H*W pixels) x (Cout) with a Cin*9 reduction walked as 9 taps x
Cin chunks of BLOCK_K in one loop; zero padding is a mask per tap and every load is masked (any B, C, H, W).
The epilogue adds the bias, applies the activation, scales, adds the residual and stores; under autograd
it also stores the pre-activation z (in x's dtype) for the backward.

Backward, all Triton (no torch GEMMs):
  1. an elementwise kernel: dz = scale * dy * act'(z), plus per-tile channel sums of dz (-> db) and of
     dy * min(z, 0) (-> the PReLU weight's grad), summed over tiles in torch: deterministic, no atomics;
  2. dx = conv3x3(dz, W^T flipped), i.e. the forward kernel on a (Cin, Cout, 3, 3) flipped copy of W;
  3. dW: an implicit-GEMM kernel per tap, dz^T (Cout x pixels) @ x shifted (pixels x Cin), split over pixel
     ranges (split-K) into fp32 partials that torch sums in a fixed order (deterministic).
  d residual = dy.
Layouts: NCHW or channels_last, read through strides; the output takes x's memory format. On CUDA,
channels_last is the fast layout: x tiles (and the weight, permuted to (3, 3, Cin, Cout)) are then
contiguous along channels and load by 16-byte async copies; NCHW tiles load element by element.
Dtypes: fp32, fp16, bf16, accumulated in fp32; y takes x's dtype promoted with the residual's, as in the
reference. Under torch.autocast, x, W and b are first cast to the autocast dtype, as autocast does for
conv2d, so kernels="triton" trains like the reference under mixed precision. On CUDA an fp32 tl.dot uses
TF32 exactly when `torch.backends.cudnn.allow_tf32` is set (as PyTorch's conv does), IEEE otherwise.
Under the CPU interpreter (TRITON_INTERPRET=1) tiles are upcast to fp32 before tl.dot, whose numpy path
mishandles bf16; compiled, fp16/bf16 tiles go to the tensor cores as they are.
Block sizes are fixed module constants sized for an H100 (no autotuning, which needs a GPU); channel tiles
shrink to the next power of two of small channel counts (>= 16, tl.dot's minimum).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.reference import ACTIVATIONS

# Forward / dx implicit GEMM: 128 pixels x 64 output channels per program, Cin in chunks of 64 (one chunk per
# tap for the usual 64 features; fp32 tiles take 3 x 48 KiB of shared memory).
FWD_BLOCK_M, FWD_BLOCK_N, FWD_BLOCK_K = 128, 64, 64
FWD_NUM_WARPS, FWD_NUM_STAGES = 4, 3
# Backward elementwise: tiles of 8192 elements, up to 64 channels (128 pixels at 64 channels).
EW_TILE, EW_MAX_BLOCK_C = 8192, 64
# dW: 64 x 64 (Cout x Cin) per program and tap, 128 pixels per reduction step; the pixel range is split so
# that ~2 programs run per SM (132 SMs on an H100 SXM), without atomics. Pipeline stages by element size
# keep fp32 tiles (2 x 64 KiB per stage) inside the 227 KiB of shared memory.
DW_BLOCK_CO, DW_BLOCK_CI, DW_BLOCK_P = 64, 64, 128
DW_TARGET_PROGRAMS = 264
DW_NUM_WARPS, DW_NUM_STAGES = 4, {2: 3, 4: 2}

ACT_CODES = {"identity": 0, "relu": 1, "leaky_relu": 2, "prelu": 3}
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def act_forward(z, alpha, negative_slope, ACT: tl.constexpr):
    """act(z) for ACT in ACT_CODES; alpha broadcasts against z (PReLU)."""
    y = z
    if ACT == 1:
        y = tl.maximum(z, 0.0)
    elif ACT == 2:
        y = tl.where(z > 0, z, z * negative_slope)
    elif ACT == 3:
        y = tl.where(z > 0, z, z * alpha)
    return y


@triton.jit
def act_derivative(z, alpha, negative_slope, ACT: tl.constexpr):
    """d act / dz, taking the negative side at z == 0 as PyTorch's relu/leaky_relu/prelu backward do."""
    d = tl.full(z.shape, 1.0, tl.float32)
    if ACT == 1:
        d = tl.where(z > 0, 1.0, 0.0)
    elif ACT == 2:
        d = tl.where(z > 0, 1.0, negative_slope)
    elif ACT == 3:
        d = tl.where(z > 0, 1.0, alpha)
    return d


@triton.jit
def pixel_offsets(p, H, W, stride_b, stride_h, stride_w):
    """Element offsets (int64) of flat pixel indices p in [0, B*H*W) of a (B, C, H, W) tensor, channel 0."""
    hw = p % (H * W)
    return (p // (H * W)).to(tl.int64) * stride_b + (hw // W) * stride_h + (hw % W) * stride_w


@triton.jit
def _conv3x3_fwd_kernel(
        x_ptr, w_ptr, b_ptr, alpha_ptr, res_ptr, y_ptr, z_ptr,
        B, C_IN, C_OUT, H, W,
        sxb, sxc, sxh, sxw, swo, swi, swh, sww, s_alpha,
        srb, src, srh, srw, syb, syc, syh, syw,
        negative_slope, scale,
        ACT: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_RES: tl.constexpr, STORE_Z: tl.constexpr,
        DOT_FP32: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    p = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # flat output pixel (b, h, w)
    co = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    p_ok, co_ok = p < B * H * W, co < C_OUT
    b, h, w = p // (H * W), (p % (H * W)) // W, p % W
    x_pix = x_ptr + b.to(tl.int64) * sxb
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    # One flat loop over (tap, Cin chunk), not 9 unrolled loops, so the compiler pipelines loads across taps.
    n_chunks = tl.cdiv(C_IN, BLOCK_K)
    for k in range(0, 9 * n_chunks):
        kh, kw = k // n_chunks // 3, k // n_chunks % 3
        ci = (k % n_chunks) * BLOCK_K + tl.arange(0, BLOCK_K)
        ci_ok = ci < C_IN
        hh, ww = h + kh - 1, w + kw - 1
        in_ok = p_ok & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)  # zero padding = masked loads
        a = tl.load(x_pix[:, None] + (hh * sxh + ww * sxw)[:, None] + ci[None, :] * sxc,
                    mask=in_ok[:, None] & ci_ok[None, :], other=0.0)  # (BLOCK_M, BLOCK_K)
        wt = tl.load(w_ptr + kh * swh + kw * sww + ci[:, None] * swi + co[None, :] * swo,
                     mask=ci_ok[:, None] & co_ok[None, :], other=0.0)  # (BLOCK_K, BLOCK_N)
        if DOT_FP32:
            a, wt = a.to(tl.float32), wt.to(tl.float32)
        acc = tl.dot(a, wt, acc, input_precision=PRECISION)

    z = acc
    if HAS_BIAS:
        z += tl.load(b_ptr + co, mask=co_ok, other=0.0).to(tl.float32)[None, :]
    mask = p_ok[:, None] & co_ok[None, :]
    y_offs = pixel_offsets(p, H, W, syb, syh, syw)[:, None] + co[None, :] * syc
    if STORE_Z:  # z shares y's strides
        tl.store(z_ptr + y_offs, z.to(z_ptr.dtype.element_ty), mask=mask)
    alpha = 0.0
    if ACT == 3:
        alpha = tl.load(alpha_ptr + co * s_alpha, mask=co_ok, other=0.0).to(tl.float32)[None, :]
    y = act_forward(z, alpha, negative_slope, ACT) * scale
    if HAS_RES:
        r_offs = pixel_offsets(p, H, W, srb, srh, srw)[:, None] + co[None, :] * src
        y += tl.load(res_ptr + r_offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + y_offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _act_bwd_kernel(
        g_ptr, z_ptr, alpha_ptr, dz_ptr, db_part_ptr, da_part_ptr,
        B, C, H, W,
        sgb, sgc, sgh, sgw, szb, szc, szh, szw, s_alpha,
        negative_slope, scale,
        ACT: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    pid_p = tl.program_id(0)
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < C
    mask = (p < B * H * W)[:, None] & c_ok[None, :]
    g_offs = pixel_offsets(p, H, W, sgb, sgh, sgw)[:, None] + c[None, :] * sgc
    z_offs = pixel_offsets(p, H, W, szb, szh, szw)[:, None] + c[None, :] * szc  # z and dz share strides
    g = tl.load(g_ptr + g_offs, mask=mask, other=0.0).to(tl.float32) * scale
    z = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    if ACT != 0:
        z = tl.load(z_ptr + z_offs, mask=mask, other=0.0).to(tl.float32)
    alpha = 0.0
    if ACT == 3:
        alpha = tl.load(alpha_ptr + c * s_alpha, mask=c_ok, other=0.0).to(tl.float32)[None, :]
    dz = g * act_derivative(z, alpha, negative_slope, ACT)  # masked lanes: g = 0 -> dz = 0
    tl.store(dz_ptr + z_offs, dz.to(dz_ptr.dtype.element_ty), mask=mask)
    tl.store(db_part_ptr + pid_p * C + c, tl.sum(dz, axis=0), mask=c_ok)
    if ACT == 3:
        tl.store(da_part_ptr + pid_p * C + c, tl.sum(tl.where(z > 0, 0.0, z * g), axis=0), mask=c_ok)


@triton.jit
def _conv3x3_dw_kernel(
        x_ptr, dz_ptr, part_ptr,
        B, C_IN, C_OUT, H, W, PIX_PER_SPLIT,
        sxb, sxc, sxh, sxw, sdb, sdc, sdh, sdw,
        DOT_FP32: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_P: tl.constexpr):
    """part[split, tap, co, ci] = sum over this split's pixels p of dz[p, co] * x[p shifted by tap, ci]."""
    n_ci = tl.cdiv(C_IN, BLOCK_CI)
    co = (tl.program_id(0) // n_ci) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    ci = (tl.program_id(0) % n_ci) * BLOCK_CI + tl.arange(0, BLOCK_CI)
    tap, split = tl.program_id(1), tl.program_id(2)
    dh, dw = tap // 3 - 1, tap % 3 - 1
    co_ok, ci_ok = co < C_OUT, ci < C_IN
    n_pix = B * H * W
    start = split * PIX_PER_SPLIT
    acc = tl.zeros((BLOCK_CO, BLOCK_CI), dtype=tl.float32)
    for p0 in range(start, tl.minimum(start + PIX_PER_SPLIT, n_pix), BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        p_ok = p < n_pix
        b, h, w = p // (H * W), (p % (H * W)) // W, p % W
        d_offs = pixel_offsets(p, H, W, sdb, sdh, sdw)[None, :] + co[:, None] * sdc
        dzt = tl.load(dz_ptr + d_offs, mask=co_ok[:, None] & p_ok[None, :], other=0.0)  # (BLOCK_CO, BLOCK_P)
        hh, ww = h + dh, w + dw
        in_ok = p_ok & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
        x_offs = (b.to(tl.int64) * sxb + hh * sxh + ww * sxw)[:, None] + ci[None, :] * sxc
        xt = tl.load(x_ptr + x_offs, mask=in_ok[:, None] & ci_ok[None, :], other=0.0)  # (BLOCK_P, BLOCK_CI)
        if DOT_FP32:
            dzt, xt = dzt.to(tl.float32), xt.to(tl.float32)
        acc = tl.dot(dzt, xt, acc, input_precision=PRECISION)
    offs = ((split * 9 + tap) * C_OUT + co[:, None]) * C_IN + ci[None, :]
    tl.store(part_ptr + offs, acc, mask=co_ok[:, None] & ci_ok[None, :])


INTERPRETED = not isinstance(_conv3x3_fwd_kernel, triton.runtime.JITFunction)  # fixed when triton.jit ran


def channel_block(channels: int, cap: int) -> int:
    """Channel tile: the next power of two of `channels`, clamped to [16 (tl.dot's minimum), cap]."""
    return max(16, min(cap, triton.next_power_of_2(max(channels, 1))))


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last when x is laid out so (and not also plain contiguous), else contiguous."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def dot_config(dtype: torch.dtype) -> tuple[bool, str]:
    """(upcast tiles to fp32, tl.dot input_precision): the interpreter's tl.dot needs fp32 tiles; on CUDA
    fp32 runs as TF32 exactly when cuDNN convs may (torch.backends.cudnn.allow_tf32)."""
    if INTERPRETED:
        return True, "ieee"
    return False, "tf32" if dtype == torch.float32 and torch.backends.cudnn.allow_tf32 else "ieee"


def autocast_dtype(t: torch.Tensor) -> torch.dtype | None:
    """The dtype torch.autocast casts conv and prelu inputs to on t's device; None outside autocast."""
    kind = t.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None


def check_device(name: str, t: torch.Tensor) -> None:
    """Triton needs a CUDA tensor, or the interpreter for CPU tensors."""
    if t.device.type != "cuda" and not INTERPRETED:
        raise ValueError(f"{name} is on {t.device}: the Triton kernels need CUDA tensors, or TRITON_INTERPRET=1 "
                         "set before `kernels` is imported to run CPU tensors interpreted (tests/conftest.py does)")


def _conv_forward(x, weight, bias, act, prelu_weight, negative_slope, residual, scale, store_z):
    """Launch the forward kernel. x: (B, Cin, H, W); weight: (Cout, Cin, 3, 3), any strides.

    Returns y (B, Cout, H, W) in x's memory format and dtype (promoted with the residual's), and if store_z
    the pre-activation z, (B, Cout, H, W) in x's dtype and memory format.
    """
    B, c_in, H, W = x.shape
    c_out = weight.shape[0]
    # (kh, kw, Cin, Cout) contiguous: weight tiles are rows of Cout, so 16-byte async copies on GPU.
    w_khwc = weight.permute(2, 3, 1, 0).contiguous()
    y_dtype = x.dtype if residual is None else torch.promote_types(x.dtype, residual.dtype)
    y = torch.empty((B, c_out, H, W), device=x.device, dtype=y_dtype, memory_format=memory_format(x))
    z = torch.empty(y.shape, device=x.device, dtype=x.dtype, memory_format=memory_format(x)) if store_z else None
    if y.numel() == 0:
        return y, z
    res = residual if residual is not None else y  # unused pointers get any valid tensor
    alpha = prelu_weight if act == "prelu" else y
    s_alpha = 0 if alpha.numel() == 1 else alpha.stride(0)  # one shared PReLU weight: stride 0
    dot_fp32, precision = dot_config(x.dtype)
    block_n, block_k = channel_block(c_out, FWD_BLOCK_N), channel_block(c_in, FWD_BLOCK_K)
    grid = (triton.cdiv(B * H * W, FWD_BLOCK_M), triton.cdiv(c_out, block_n))
    _conv3x3_fwd_kernel[grid](
        x, w_khwc, bias if bias is not None else y, alpha, res, y, z if store_z else y,
        B, c_in, c_out, H, W, *x.stride(), w_khwc.stride(3), w_khwc.stride(2), *w_khwc.stride()[:2], s_alpha,
        *res.stride(), *y.stride(),
        float(negative_slope), float(scale),
        ACT=ACT_CODES[act], HAS_BIAS=bias is not None, HAS_RES=residual is not None, STORE_Z=store_z,
        DOT_FP32=dot_fp32, PRECISION=precision, BLOCK_M=FWD_BLOCK_M, BLOCK_N=block_n, BLOCK_K=block_k,
        num_warps=FWD_NUM_WARPS, num_stages=FWD_NUM_STAGES)
    return y, z


def _act_backward(grad_y, z, prelu_weight, act, negative_slope, scale, like):
    """dz = scale * grad_y * act'(z) in like's dtype and layout, db (Cout,) fp32, d prelu_weight (fp32 or None).

    grad_y: (B, Cout, H, W), any strides; z: the saved pre-activation (None for identity).
    """
    B, C, H, W = grad_y.shape
    dz = torch.empty_like(z) if z is not None else torch.empty(
        grad_y.shape, device=like.device, dtype=like.dtype, memory_format=memory_format(like))
    block_c = min(EW_MAX_BLOCK_C, triton.next_power_of_2(max(C, 1)))
    block_p = EW_TILE // block_c
    n_tiles = triton.cdiv(B * H * W, block_p)
    db_part = torch.empty((n_tiles, C), device=dz.device, dtype=torch.float32)
    da_part = torch.empty_like(db_part) if act == "prelu" else db_part
    alpha = prelu_weight if act == "prelu" else dz
    s_alpha = 0 if alpha.numel() == 1 else alpha.stride(0)
    if dz.numel() > 0:
        _act_bwd_kernel[(n_tiles, triton.cdiv(C, block_c))](
            grad_y, z if z is not None else dz, alpha, dz, db_part, da_part,
            B, C, H, W, *grad_y.stride(), *dz.stride(), s_alpha, float(negative_slope), float(scale),
            ACT=ACT_CODES[act], BLOCK_P=block_p, BLOCK_C=block_c)
    d_alpha = None
    if act == "prelu":
        d_alpha = da_part.sum(0) if prelu_weight.numel() > 1 else da_part.sum().reshape(1)
    return dz, db_part.sum(0), d_alpha


def _conv_weight_grad(x, dz):
    """dW (Cout, Cin, 3, 3) fp32 from x: (B, Cin, H, W) and dz: (B, Cout, H, W), any strides."""
    B, c_in, H, W = x.shape
    c_out, n_pix = dz.shape[1], B * H * W
    if n_pix == 0:
        return torch.zeros((c_out, c_in, 3, 3), device=x.device, dtype=torch.float32)
    block_co, block_ci = channel_block(c_out, DW_BLOCK_CO), channel_block(c_in, DW_BLOCK_CI)
    tiles = triton.cdiv(c_out, block_co) * triton.cdiv(c_in, block_ci)
    splits = max(1, min(triton.cdiv(n_pix, DW_BLOCK_P), triton.cdiv(DW_TARGET_PROGRAMS, tiles * 9)))
    pix_per_split = triton.cdiv(triton.cdiv(n_pix, splits), DW_BLOCK_P) * DW_BLOCK_P
    splits = triton.cdiv(n_pix, pix_per_split)
    part = torch.empty((splits, 9, c_out, c_in), device=x.device, dtype=torch.float32)
    dot_fp32, precision = dot_config(x.dtype)
    _conv3x3_dw_kernel[(tiles, 9, splits)](
        x, dz, part, B, c_in, c_out, H, W, pix_per_split, *x.stride(), *dz.stride(),
        DOT_FP32=dot_fp32, PRECISION=precision, BLOCK_CO=block_co, BLOCK_CI=block_ci, BLOCK_P=DW_BLOCK_P,
        num_warps=DW_NUM_WARPS, num_stages=DW_NUM_STAGES[x.element_size()])
    return part.sum(0).permute(1, 2, 0).reshape(c_out, c_in, 3, 3)  # (9, Cout, Cin) -> (Cout, Cin, 3, 3)


class Conv3x3Act(torch.autograd.Function):
    """Autograd for the fused block; gradients for x, weight, bias, prelu_weight and residual."""

    @staticmethod
    def forward(ctx, x, weight, bias, prelu_weight, residual, act, negative_slope, scale):
        y, z = _conv_forward(x, weight, bias, act, prelu_weight, negative_slope, residual, scale,
                             store_z=act != "identity")
        ctx.save_for_backward(x, weight, z, prelu_weight if act == "prelu" else None)
        ctx.act, ctx.negative_slope, ctx.scale = act, negative_slope, scale
        ctx.bias_dtype = None if bias is None else bias.dtype
        ctx.residual_dtype = None if residual is None else residual.dtype
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, weight, z, prelu_weight = ctx.saved_tensors
        need_x, need_w, need_b, need_alpha, need_res = ctx.needs_input_grad[:5]
        dz, db, d_alpha = _act_backward(grad_y, z, prelu_weight, ctx.act, ctx.negative_slope, ctx.scale, x)
        dx = dw = None
        if need_x:  # the transposed conv is a conv with W^T flipped in both spatial axes: (Cin, Cout, 3, 3)
            dx = _conv_forward(dz, weight.transpose(0, 1).flip(2, 3), None, "identity", None, 0.0, None, 1.0,
                               store_z=False)[0]
        if need_w:
            dw = _conv_weight_grad(x, dz).to(weight.dtype)
        db = db.to(ctx.bias_dtype) if need_b else None
        if need_alpha and d_alpha is not None:
            d_alpha = d_alpha.reshape(prelu_weight.shape).to(prelu_weight.dtype)
        else:
            d_alpha = None
        d_res = grad_y.to(ctx.residual_dtype) if need_res else None
        return dx, dw, db, d_alpha, d_res, None, None, None


def _check_inputs(x, weight, bias, act, prelu_weight, residual) -> None:
    """ValueError naming the bad argument: act name, shapes, dtypes, devices."""
    if act not in ACT_CODES:
        raise ValueError(f"unknown activation {act!r}; valid: {', '.join(ACTIVATIONS)}")
    if x.dim() != 4:
        raise ValueError(f"conv3x3_act: x must be (B, Cin, H, W), got shape {tuple(x.shape)}")
    if x.dtype not in DTYPES:
        raise ValueError(f"conv3x3_act: x dtype {x.dtype} not supported; valid: {DTYPES}")
    check_device("conv3x3_act: x", x)
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
    if weight.dtype != x.dtype:
        raise ValueError(f"conv3x3_act: weight dtype {weight.dtype} differs from x's {x.dtype}")
    if residual is not None and residual.dtype not in DTYPES:
        raise ValueError(f"conv3x3_act: residual dtype {residual.dtype} not supported; valid: {DTYPES}")
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
    x, weight and bias are cast to its dtype first. Same contract as `kernels.reference.conv3x3_act`.
    """
    cast = autocast_dtype(x)
    if cast is not None and x.dtype in DTYPES:  # autocast's rule for conv2d (it leaves fp64 alone); the casts
        # are autograd ops, so fp32 parameters still get their gradients
        x, weight = x.to(cast), weight.to(cast)
        bias = None if bias is None else bias.to(cast)
    _check_inputs(x, weight, bias, act, prelu_weight, residual)
    tensors = (x, weight, bias, prelu_weight, residual)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return Conv3x3Act.apply(x, weight, bias, prelu_weight, residual, act, negative_slope, scale)
    return _conv_forward(x, weight, bias, act, prelu_weight, negative_slope, residual, scale, store_z=False)[0]
