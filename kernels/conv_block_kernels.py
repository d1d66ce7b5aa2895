"""Device code of the fused 3x3 conv block (`kernels.conv_block` holds the launchers and the autograd).

Four kernels:
- `conv3x3_fwd_kernel`: implicit GEMM, (B*H*W pixels) x Cout with a Cin*9 reduction walked as 9 taps x
  Cin chunks in one flat loop; epilogue bias, activation, scale, residual. It is also the backward's dx
  (the weight read with its taps reversed and K/N swapped, through strides: no flipped copy).
- `act_bwd_kernel`: dz = scale * dy * act'(z), plus per-tile sums of dy * min(z, 0) for the PReLU weight.
- `conv3x3_dw_kernel`: dW per tap, dz^T (Cout x pixels) @ x shifted (pixels x Cin), split over pixel ranges
  into fp32 partials; the centre tap's programs also sum dz (db).
- `reduce_dw_kernel`: sums the partials over the splits in a fixed order (deterministic, no atomics) and
  writes dW in the weight's (Cout, Cin, 3, 3) layout and dtype, and db in the bias's dtype.
"""
from __future__ import annotations

import triton
import triton.language as tl

from kernels.launch import act_derivative, act_forward, pixel_offsets


@triton.jit
def conv3x3_fwd_kernel(
        x_ptr, w_ptr, b_ptr, alpha_ptr, res_ptr, y_ptr, z_ptr,
        B, C_IN, C_OUT, H, W,
        sxb, sxc, sxh, sxw, swo, swi, swh, sww, s_alpha,
        srb, src, srh, srw, syb, syc, syh, syw,
        negative_slope, scale,
        ACT: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_RES: tl.constexpr, STORE_Z: tl.constexpr,
        DOT_FP32: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """y = res + scale * act(conv3x3(x, w) + b); w[co, ci, kh, kw] at w_ptr + co*swo + ci*swi + kh*swh + kw*sww."""
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
def act_bwd_kernel(
        g_ptr, z_ptr, alpha_ptr, dz_ptr, da_part_ptr,
        B, C, H, W,
        sgb, sgc, sgh, sgw, szb, szc, szh, szw, s_alpha,
        negative_slope, scale,
        ACT: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """dz = scale * g * act'(z); with ACT == prelu, da_part[tile, c] = sum over the tile of g * min(z, 0)."""
    pid_p = tl.program_id(0)
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < C
    mask = (p < B * H * W)[:, None] & c_ok[None, :]
    g_offs = pixel_offsets(p, H, W, sgb, sgh, sgw)[:, None] + c[None, :] * sgc
    z_offs = pixel_offsets(p, H, W, szb, szh, szw)[:, None] + c[None, :] * szc  # z and dz share strides
    g = tl.load(g_ptr + g_offs, mask=mask, other=0.0).to(tl.float32) * scale
    z = tl.load(z_ptr + z_offs, mask=mask, other=0.0).to(tl.float32)
    alpha = 0.0
    if ACT == 3:
        alpha = tl.load(alpha_ptr + c * s_alpha, mask=c_ok, other=0.0).to(tl.float32)[None, :]
    dz = g * act_derivative(z, alpha, negative_slope, ACT)  # masked lanes: g = 0 -> dz = 0
    tl.store(dz_ptr + z_offs, dz.to(dz_ptr.dtype.element_ty), mask=mask)
    if ACT == 3:
        tl.store(da_part_ptr + pid_p * C + c, tl.sum(tl.where(z > 0, 0.0, z * g), axis=0), mask=c_ok)


@triton.jit
def conv3x3_dw_kernel(
        x_ptr, dz_ptr, part_ptr,
        B, C_IN, C_OUT, H, W, PIX_PER_SPLIT, ROW,
        sxb, sxc, sxh, sxw, sdb, sdc, sdh, sdw,
        WITH_DB: tl.constexpr, DOT_FP32: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, BLOCK_P: tl.constexpr):
    """part[split, tap, co, ci] = sum over this split's pixels p of dz[p, co] * x[p shifted by tap, ci];
    WITH_DB: part[split, 9 * C_OUT * C_IN + co] = sum of dz[p, co] (a row holds ROW elements)."""
    n_ci = tl.cdiv(C_IN, BLOCK_CI)
    pid_ci = tl.program_id(0) % n_ci
    co = (tl.program_id(0) // n_ci) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    ci = pid_ci * BLOCK_CI + tl.arange(0, BLOCK_CI)
    tap, split = tl.program_id(1), tl.program_id(2)
    dh, dw = tap // 3 - 1, tap % 3 - 1
    co_ok, ci_ok = co < C_OUT, ci < C_IN
    n_pix = B * H * W
    start = split * PIX_PER_SPLIT
    end = tl.minimum(start + PIX_PER_SPLIT, n_pix)
    acc = tl.zeros((BLOCK_CO, BLOCK_CI), dtype=tl.float32)
    for p0 in range(start, end, BLOCK_P):
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
    offs = split * ROW + (tap * C_OUT + co[:, None]) * C_IN + ci[None, :]
    tl.store(part_ptr + offs, acc, mask=co_ok[:, None] & ci_ok[None, :])
    if WITH_DB:
        if (tap == 4) & (pid_ci == 0):  # one program per (Cout tile, split): a second, short pass over dz
            db = tl.zeros((BLOCK_CO,), dtype=tl.float32)
            for p0 in range(start, end, BLOCK_P):
                p = p0 + tl.arange(0, BLOCK_P)
                d_offs = pixel_offsets(p, H, W, sdb, sdh, sdw)[None, :] + co[:, None] * sdc
                dzt = tl.load(dz_ptr + d_offs, mask=co_ok[:, None] & (p < n_pix)[None, :], other=0.0)
                db += tl.sum(dzt.to(tl.float32), axis=1)
            tl.store(part_ptr + split * ROW + 9 * C_OUT * C_IN + co, db, mask=co_ok)


@triton.jit
def reduce_dw_kernel(part_ptr, dw_ptr, db_ptr, n_splits, C_IN, C_OUT, ROW, scale,
                     WITH_DB: tl.constexpr, BLOCK: tl.constexpr):
    """dW[co, ci, kh, kw] = scale * sum_s part[s, 3*kh+kw, co, ci] and db[co] = scale * sum_s part[s, 9*Co*Ci + co],
    summed over the splits in order; stored in dw_ptr's and db_ptr's dtypes."""
    r = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # index into a part row
    n_dw = 9 * C_OUT * C_IN
    n_out = n_dw + C_OUT if WITH_DB else n_dw
    ok = r < n_out
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for s in range(0, n_splits):
        acc += tl.load(part_ptr + s * ROW + r, mask=ok, other=0.0)
    acc *= scale
    tap, co, ci = r // (C_OUT * C_IN), (r // C_IN) % C_OUT, r % C_IN
    tl.store(dw_ptr + (co * C_IN + ci) * 9 + tap, acc.to(dw_ptr.dtype.element_ty), mask=ok & (r < n_dw))
    if WITH_DB:
        tl.store(db_ptr + (r - n_dw), acc.to(db_ptr.dtype.element_ty), mask=ok & (r >= n_dw))
