"""A roofline *model* of the benchmark cases: FLOPs and bytes to lower-bound times on an H100, and what the
fusion saves in DRAM traffic against eager PyTorch and torch.compile. Nothing here is measured.

Bytes count DRAM traffic of activation-sized tensors only (weights, biases and per-channel partial sums
are small and stay in L2), in units of A = one (B, C, H, W) activation in the compute dtype:
- fused conv block (prelu + residual): forward reads x and the residual and writes y (3A), plus z, the
  pre-activation saved for the backward, when training (4A). Backward: dz = dy * act'(z) reads dy and z,
  writes dz (3A); dx reads dz, writes dx (2A); dW reads x and dz once (2A; the 9 taps re-read them from
  L2): 7A.
- eager (kernels.reference on cuDNN): conv reads x, writes c (2A); the bias is a separate in-place add
  (2A); PReLU (2A); the residual add reads two, writes one (3A): 9A. Backward: PReLU's backward reads
  dy and c, writes dc (3A); db and the PReLU weight's grad read dc and c again (2A); cuDNN dgrad (2A)
  and wgrad (2A): 9A.
- torch.compile: cuDNN stays an extern kernel (conv with its bias, 4A); Inductor fuses PReLU and the
  residual add into one pointwise kernel (3A): 7A. Backward: one fused pointwise + reduction kernel
  for dc, db, d alpha (3A), dgrad, wgrad (4A): 7A.
- pixel shuffle + PReLU: fused and compiled read and write each element once (2A; backward reads dy and
  x, writes dx: 3A); eager shuffles (2A), then PReLU (2A): 4A; backward 5A.
- RaGAN loss: ~1e2 to 1e5 logits; DRAM is no bound there, the launch count is (fused: 1 + 1).
H100 SXM peaks: 989.4 TFLOP/s dense bf16/fp16, 494.7 TF32, 3.35 TB/s HBM3.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

H100_BF16_FLOPS, H100_TF32_FLOPS, H100_HBM_BYTES = 989.4e12, 494.7e12, 3.35e12
# DRAM traffic in activations (A): (forward, backward) per implementation, as the module docstring counts.
CONV_TRAFFIC = {"fused": (4, 7), "eager": (9, 9), "torch.compile": (7, 7)}
SHUFFLE_TRAFFIC = {"fused": (2, 3), "eager": (4, 5), "torch.compile": (2, 3)}


@dataclass(frozen=True)
class RooflineRow:
    case: str
    flops: float
    bytes_fused: float
    bytes_eager: float
    bytes_compile: float
    lower_bound_us: float  # max(FLOPs / peak, fused bytes / HBM bandwidth) on an H100 SXM
    bound: str  # "memory" or "compute"
    saved_vs_eager_MB: float
    saved_vs_compile_MB: float


def _row(case: str, flops: float, peak_flops: float, traffic: dict[str, float]) -> RooflineRow:
    t_flops, t_bytes = flops / peak_flops, traffic["fused"] / H100_HBM_BYTES
    return RooflineRow(case, flops, traffic["fused"], traffic["eager"], traffic["torch.compile"],
                       round(1e6 * max(t_flops, t_bytes), 2), "compute" if t_flops > t_bytes else "memory",
                       round((traffic["eager"] - traffic["fused"]) / 1e6, 2),
                       round((traffic["torch.compile"] - traffic["fused"]) / 1e6, 2))


def conv_rows(B: int, C: int, H: int, W: int, element_size: int) -> list[RooflineRow]:
    """Forward and backward of the C -> C block conv with PReLU and residual (the benchmark's case)."""
    activation = B * C * H * W * element_size
    flops = 2.0 * B * H * W * C * C * 9
    peak = H100_BF16_FLOPS if element_size == 2 else H100_TF32_FLOPS
    dtype = "bf16" if element_size == 2 else "fp32 (TF32)"
    return [_row(f"conv3x3_act {B}x{C}x{H}x{W} {dtype} {part}", flops * (1 if i == 0 else 2), peak,
                 {impl: traffic[i] * activation for impl, traffic in CONV_TRAFFIC.items()})
            for i, part in enumerate(("fwd", "bwd"))]


def shuffle_rows(B: int, C: int, H: int, W: int, element_size: int) -> list[RooflineRow]:
    """Forward and backward of pixel shuffle + PReLU on a (B, C, H, W) input."""
    activation = B * C * H * W * element_size
    return [_row(f"pixel_shuffle_act {B}x{C}x{H}x{W} {part}", 0.0, H100_BF16_FLOPS,
                 {impl: traffic[i] * activation for impl, traffic in SHUFFLE_TRAFFIC.items()})
            for i, part in enumerate(("fwd", "bwd"))]


def model(conv_shapes, shuffle_shapes, element_sizes=(2, 4)) -> list[dict]:
    """Every row of the model, as dicts: the benchmark's conv and shuffle shapes in each element size."""
    rows = [r for shape in conv_shapes for size in element_sizes for r in conv_rows(*shape, size)]
    rows += [r for shape in shuffle_shapes for r in shuffle_rows(*shape[:4], 2)]
    return [asdict(r) for r in rows]


def format_model(rows: list[dict]) -> str:
    header = ("case", "GFLOP", "MB fused", "MB eager", "MB compile", "H100 bound us", "bound",
              "saved vs eager MB", "saved vs compile MB")
    lines = [(r["case"], f"{r['flops'] / 1e9:.2f}", f"{r['bytes_fused'] / 1e6:.1f}", f"{r['bytes_eager'] / 1e6:.1f}",
              f"{r['bytes_compile'] / 1e6:.1f}", f"{r['lower_bound_us']:.2f}", r["bound"],
              f"{r['saved_vs_eager_MB']:.1f}", f"{r['saved_vs_compile_MB']:.1f}") for r in rows]
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header))]
    fmt = lambda row: " | ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()  # noqa: E731
    title = "roofline MODEL (not a measurement): H100 SXM lower bounds from FLOPs and minimal DRAM bytes"
    return "\n".join([title, fmt(header), "-+-".join("-" * w for w in widths), *map(fmt, lines)])
