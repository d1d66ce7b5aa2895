"""Timed cases on a CUDA device: each Triton kernel against eager PyTorch (cuDNN) and torch.compile.

For every op, shape and dtype the Triton forward is first checked against eager PyTorch (a RuntimeError if it
is off by more than MAX_REL_ERROR); then each implementation is timed forward ("fwd", under no_grad) and
forward + backward ("fwd+bwd"), and the conv's backward parts alone: dx (Triton's forward kernel on the
reversed weight against cuDNN's dgrad) and dW (split-K kernel + reduction against cuDNN's wgrad).
Implementations: "triton" (kernels.<op>), "eager" (kernels.reference: cuDNN conv, then separate epilogue
ops) and "compile" (torch.compile of the same reference). Throughput is TFLOP/s for the conv (2*B*H*W*Cout*
Cin*9 FLOPs forward, 3x that with the backward) and GB/s for the bandwidth-bound ops (the minimal bytes each
must move), with the percentage of the device's peak (H100 SXM's, H200's on an H200); an fp32 conv is held
to the TF32 peak when TF32 is on, else to the CUDA-core fp32 peak. Convs run channels_last.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator

import torch

from kernels import conv_block, pixel_shuffle, ragan_loss, reference


@dataclass(frozen=True)
class Peaks:
    """Dense peaks of one device: tensor-core TFLOP/s (bf16/fp16, TF32), CUDA-core fp32 TFLOP/s, HBM GB/s."""
    name: str
    bf16_tflops: float
    tf32_tflops: float
    fp32_tflops: float
    hbm_gbs: float


H100_SXM = Peaks("H100 SXM5", bf16_tflops=989.4, tf32_tflops=494.7, fp32_tflops=66.9, hbm_gbs=3350.0)
H200 = Peaks("H200 SXM", bf16_tflops=989.4, tf32_tflops=494.7, fp32_tflops=66.9, hbm_gbs=4800.0)
CONV_SHAPES = ((16, 64, 48, 48), (16, 64, 128, 128))  # (B, C, H, W): default and paper training patches
CONV_DTYPES = (torch.bfloat16, torch.float32)
# SRGAN's upsampler input (B, C*r*r, H, W, r) at 64 features; the second (134 MB in bf16) exceeds the L2.
SHUFFLE_SHAPES = ((16, 256, 48, 48, 2), (16, 256, 128, 128, 2))
LOSS_BATCHES = (16, 1 << 16)  # one logit per image; a large patch map (16 x 64 x 64)
BANDWIDTH_DTYPES = (torch.bfloat16, torch.float32)
MAX_REL_ERROR = 5e-2  # Triton vs eager output, relative to its largest value: beyond bf16/TF32 rounding = broken


@dataclass(frozen=True)
class Case:
    """One timed call: fn() runs it; work is FLOPs (unit TFLOP/s) or bytes (unit GB/s); peak is in unit."""
    op: str
    shape: str
    dtype: torch.dtype
    impl: str
    fn: Callable[[], object]
    work: float
    unit: str
    peak: float


def device_peaks() -> Peaks:
    """The peaks of the current CUDA device: H200's on an H200, else H100 SXM's."""
    return H200 if "H200" in torch.cuda.get_device_name() else H100_SXM


def implementations(op_triton: Callable, op_reference: Callable, compiled: bool) -> dict[str, Callable]:
    # dynamic=False: one static graph per shape, as a training loop at fixed patch size gets.
    impls = {"triton": op_triton, "eager": op_reference}
    return impls | ({"compile": torch.compile(op_reference, dynamic=False)} if compiled else {})


def check_against_eager(what: str, call: Callable[[], torch.Tensor], eager: Callable[[], torch.Tensor]) -> None:
    """Time only kernels that compute the right thing: the forward output against eager PyTorch's."""
    with torch.no_grad():
        out, expected = call().float(), eager().float()
    error = ((out - expected).abs().max() / expected.abs().max().clamp_min(1e-12)).item()
    if not error <= MAX_REL_ERROR:
        raise RuntimeError(f"{what}: Triton output is off eager by {error:.3g} (relative), over {MAX_REL_ERROR}")


def timed_pair(op: str, shape: str, dtype: torch.dtype, impl: str, call: Callable[[], torch.Tensor],
               leaves: list[torch.Tensor], fwd_work: float, bwd_work: float, unit: str, peak: float
               ) -> Iterator[Case]:
    """A forward case (no autograd graph) and a forward + backward case (grads of every leaf)."""
    def fwd():
        with torch.no_grad():
            return call()

    def fwd_bwd():
        out = call()
        return torch.autograd.grad(out, leaves, torch.ones_like(out))

    yield Case(f"{op} fwd", shape, dtype, impl, fwd, fwd_work, unit, peak)
    yield Case(f"{op} fwd+bwd", shape, dtype, impl, fwd_bwd, fwd_work + bwd_work, unit, peak)


def conv_peak(dtype: torch.dtype, peaks: Peaks) -> float:
    tf32 = torch.backends.cudnn.conv.fp32_precision == "tf32"
    return peaks.bf16_tflops if dtype != torch.float32 else peaks.tf32_tflops if tf32 else peaks.fp32_tflops


def conv_cases(B: int, C: int, H: int, W: int, dtype: torch.dtype, peaks: Peaks, device: str = "cuda",
               compiled: bool = True) -> Iterator[Case]:
    """SRGAN's block conv: C -> C, PReLU, + residual; channels_last (the fast layout for cuDNN and Triton)."""
    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, device=device) * scale).to(dtype)

    x = rand(B, C, H, W).to(memory_format=torch.channels_last)
    weight, bias, prelu = rand(C, C, 3, 3, scale=(9 * C) ** -0.5), rand(C), rand(C, scale=0.25)
    residual = rand(B, C, H, W).to(memory_format=torch.channels_last)
    leaves = [t.requires_grad_() for t in (x, weight, bias, prelu, residual)]
    flops, peak = 2.0 * B * H * W * C * C * 9, conv_peak(dtype, peaks)
    shape = f"{B}x{C}x{H}x{W} cl prelu+res"
    calls = {impl: partial(op, x, weight, bias, act="prelu", prelu_weight=prelu, residual=residual)
             for impl, op in implementations(conv_block.conv3x3_act, reference.conv3x3_act, compiled).items()}
    check_against_eager(f"conv3x3_act {shape} {dtype}", calls["triton"], calls["eager"])
    for impl, call in calls.items():
        yield from timed_pair("conv3x3_act", shape, dtype, impl, call, leaves, flops, 2 * flops, "TFLOP/s", peak)
    yield from conv_part_cases(x.detach(), weight.detach(), flops, shape, peak)


def conv_part_cases(x: torch.Tensor, weight: torch.Tensor, flops: float, shape: str, peak: float
                    ) -> Iterator[Case]:
    """The backward's two GEMMs alone, Triton against cuDNN: dx from dz, and dW from x and dz."""
    dz = torch.randn_like(x)
    packed = conv_block.packed_weight(weight, x.dtype)
    c_in = x.shape[1]
    parts = {
        ("conv3x3 dx", "triton"): lambda: conv_block._conv_forward(
            dz, *conv_block.transposed_weight(packed), c_in, None, "identity", None, 0.0, None, 1.0, False)[0],
        ("conv3x3 dx", "eager"): lambda: torch.nn.grad.conv2d_input(x.shape, weight, dz, padding=1),
        ("conv3x3 dW", "triton"): lambda: conv_block._conv_weight_grad(x, dz, 1.0, weight.dtype, None)[0],
        ("conv3x3 dW", "eager"): lambda: torch.nn.grad.conv2d_weight(x, weight.shape, dz, padding=1),
    }
    for (op, impl), fn in parts.items():
        yield Case(op, shape, x.dtype, impl, fn, flops, "TFLOP/s", peak)


def shuffle_cases(B: int, C: int, H: int, W: int, r: int, dtype: torch.dtype, peaks: Peaks, device: str = "cuda",
                  compiled: bool = True) -> Iterator[Case]:
    """Pixel shuffle + per-channel PReLU: reads and writes each element once (backward: reads 2, writes 1)."""
    x = torch.randn(B, C, H, W, device=device, dtype=dtype, requires_grad=True)
    prelu = torch.full((C // r**2,), 0.25, device=device, dtype=dtype, requires_grad=True)
    nbytes, shape = x.numel() * x.element_size(), f"{B}x{C}x{H}x{W} r={r}"
    calls = {impl: partial(op, x, r, act="prelu", prelu_weight=prelu) for impl, op in
             implementations(pixel_shuffle.pixel_shuffle_act, reference.pixel_shuffle_act, compiled).items()}
    check_against_eager(f"pixel_shuffle_act {shape} {dtype}", calls["triton"], calls["eager"])
    for impl, call in calls.items():
        yield from timed_pair("pixel_shuffle_act", shape, dtype, impl, call, [x, prelu], 2 * nbytes, 3 * nbytes,
                              "GB/s", peaks.hbm_gbs)


def loss_cases(batch: int, dtype: torch.dtype, peaks: Peaks, device: str = "cuda", compiled: bool = True
               ) -> Iterator[Case]:
    """RaGAN loss for D: reads both logit vectors (backward: reads them again, writes both grads)."""
    real = torch.randn(batch, 1, device=device, dtype=dtype, requires_grad=True)
    fake = torch.randn(batch, 1, device=device, dtype=dtype, requires_grad=True)
    nbytes, shape = 2 * real.numel() * real.element_size(), f"2x{batch}x1"
    calls = {impl: partial(op, real, fake, "d")
             for impl, op in implementations(ragan_loss.ragan_loss, reference.ragan_loss, compiled).items()}
    check_against_eager(f"ragan_loss {shape} {dtype}", calls["triton"], calls["eager"])
    for impl, call in calls.items():
        yield from timed_pair("ragan_loss", shape, dtype, impl, call, [real, fake], nbytes, 2 * nbytes, "GB/s",
                              peaks.hbm_gbs)


def all_cases(peaks: Peaks, compiled: bool = True) -> Iterator[Case]:
    """Every case, built lazily so each shape's tensors are freed before the next is allocated."""
    for shape in CONV_SHAPES:
        for dtype in CONV_DTYPES:
            yield from conv_cases(*shape, dtype, peaks, compiled=compiled)
    for shape in SHUFFLE_SHAPES:
        for dtype in BANDWIDTH_DTYPES:
            yield from shuffle_cases(*shape, dtype, peaks, compiled=compiled)
    for batch in LOSS_BATCHES:
        for dtype in BANDWIDTH_DTYPES:
            yield from loss_cases(batch, dtype, peaks, compiled=compiled)


def measure(case: Case, timer: Callable[[Callable[[], object]], float]) -> dict:
    """One row of the report; timer(fn) returns milliseconds. fn runs once first (torch.compile compiles)."""
    case.fn()
    ms = timer(case.fn)
    scale = 1e12 if case.unit == "TFLOP/s" else 1e9
    throughput = case.work / (ms * 1e-3) / scale
    return dict(op=case.op, shape=case.shape, dtype=str(case.dtype).removeprefix("torch."), impl=case.impl,
                ms=significant(ms), throughput=significant(throughput), unit=case.unit,
                pct_peak=significant(100 * throughput / case.peak))


def significant(value: float, digits: int = 4) -> float:
    """value to `digits` significant digits (timings are not more precise; keeps the JSON readable)."""
    return float(f"{value:.{digits}g}")


def format_rows(rows: list[dict], title: str) -> str:
    """A readable table of timing rows."""
    header = ("op", "shape", "dtype", "impl", "time ms", "TFLOP/s or GB/s", "% peak")
    lines = [(r["op"], r["shape"], r["dtype"], r["impl"], f"{r['ms']:.4g}", f"{r['throughput']:.4g} {r['unit']}",
              f"{r['pct_peak']:.3g}") for r in rows]
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header))]
    fmt = lambda row: " | ".join(cell.ljust(w) for cell, w in zip(row, widths))  # noqa: E731
    return "\n".join([title, fmt(header), "-+-".join("-" * w for w in widths), *map(fmt, lines)])
