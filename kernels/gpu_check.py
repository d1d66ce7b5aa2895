"""`make gpu-check`: one command that validates the kernels on a CUDA GPU and writes one JSON.

    python -m kernels.gpu_check --out metrics/gpu_check.json [--budget-s 480]

Sized for at most 8 minutes on one H100. In order: device and versions; the GPU-marked tests
(pytest -m gpu); bitwise determinism of two forward + backward runs; a > 2**31-element input against
F.conv2d on a crop; NaN and Inf through every activation; TF32 really used when enabled; launches per
call of the loss; do_bench timings of the Triton conv (fwd, dx, dW), pixel shuffle and loss against
cuDNN/eager, with one torch.compile case; 100 training steps with kernels="triton" against "torch"; the
launch on a second GPU when there is one; and what the device compiled (n_regs, n_spills, shared per
variant). Each check records ok, its figures and its seconds; a check that raises is recorded as failed
and the rest still run; checks past the time budget are recorded as not run. The goals of the issue
(conv >= 1.2x eager, pixel shuffle >= 80% of HBM beyond L2, loss <= 2 launches) are judged at the end.
Without CUDA it writes {"ran": false, "reason": ...} and exits 0: there is nothing to validate.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

import torch

from kernels import bench, compile_report, gpu_checks, ragan_loss, reference, timings
from kernels.capture import TorchOps
from srcore.config import load_params

ROOT = Path(__file__).resolve().parents[1]


def gpu_tests() -> dict:
    """The test suite's GPU-marked tests, compiled on this device: counts and the failures' names."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                               f"--junitxml={report}", "tests"], cwd=ROOT, env=env, capture_output=True, text=True)
        cases = list(ET.parse(report).getroot().iter("testcase")) if report.exists() else []
        failed = [f"{c.get('classname')}::{c.get('name')}" for c in cases if c.find("failure") is not None
                  or c.find("error") is not None]
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]
    return dict(ok=proc.returncode == 0, summary=summary, failed=failed)


def tf32_in_use(shape=(4, 64, 24, 24)) -> dict:
    """fp32 convs with TF32 on (through cudnn.conv.fp32_precision) differ from IEEE and err like TF32 does."""
    args = gpu_checks.conv_args(shape, torch.float32, "cuda")
    ref = reference.conv3x3_act(**{n: t.detach().double() for n, t in args.items()}, act="prelu")
    errors = {}
    old = torch.backends.cudnn.conv.fp32_precision
    try:
        for mode in ("tf32", "ieee"):
            torch.backends.cudnn.conv.fp32_precision = mode
            with torch.no_grad():
                y = gpu_checks.conv_block.conv3x3_act(**args, act="prelu").double()
            errors[mode] = ((y - ref).abs().max() / ref.abs().max()).item()
    finally:
        torch.backends.cudnn.conv.fp32_precision = old
    return dict(ok=errors["ieee"] < 1e-5 < errors["tf32"] < 5e-3, max_rel_error=errors)


def loss_launches(batch: int = 16) -> dict:
    """Kernels launched by one forward + backward of the fused loss (Triton launches and aten ops)."""
    from triton import knobs
    real, fake = (torch.randn(batch, 1, device="cuda", requires_grad=True) for _ in range(2))
    ragan_loss.ragan_loss(real, fake, "d").backward()  # compiled before counting
    triton_launches: list = []
    knobs.runtime.launch_enter_hook.add(triton_launches.append)  # called with each launch's metadata
    try:
        with TorchOps() as ops:
            ragan_loss.ragan_loss(real, fake, "d").backward()
    finally:
        knobs.runtime.launch_enter_hook.remove(triton_launches.append)
    aten = [op for op in ops.ops if op not in ("ones_like", "fill_")]  # the .backward() seed, not the loss
    return dict(ok=len(triton_launches) + len(aten) <= 2, triton=len(triton_launches), aten=aten)


def timed() -> dict:
    """do_bench of the conv (fwd, fwd+bwd, dx, dW) at both training shapes, the shuffle and the loss, against
    cuDNN/eager; torch.compile for the 16x64x48x48 bf16 conv block only."""
    peaks = timings.device_peaks()

    def cases():
        for shape in timings.CONV_SHAPES:
            for dtype in timings.CONV_DTYPES:
                first = shape == timings.CONV_SHAPES[0] and dtype == torch.bfloat16
                yield from timings.conv_cases(*shape, dtype, peaks, compiled=first)
        for shape in timings.SHUFFLE_SHAPES:
            yield from timings.shuffle_cases(*shape, torch.bfloat16, peaks, compiled=False)
        for batch in timings.LOSS_BATCHES:
            yield from timings.loss_cases(batch, torch.bfloat16, peaks, compiled=False)

    result = bench.time_cases(tf32=True, cases=cases())
    return dict(ok=True, **result)


def second_gpu() -> dict:
    """With two GPUs: a conv on cuda:1 while cuda:0 is current matches the reference (the launch guard)."""
    if torch.cuda.device_count() < 2:
        return dict(ok=True, ran=False, reason=f"{torch.cuda.device_count()} GPU: needs two")
    torch.cuda.set_device(0)
    args = {n: t.detach() for n, t in gpu_checks.conv_args((2, 16, 8, 8), torch.float32, "cuda:1").items()}
    with torch.no_grad():
        y = gpu_checks.conv_block.conv3x3_act(**args, act="prelu")
        expected = reference.conv3x3_act(**{n: t.double() for n, t in args.items()}, act="prelu")
        error = (y.double() - expected).abs().max()
    return dict(ok=error.item() < 5e-3, ran=True, max_abs_error=error.item())  # TF32 is on by default


def device_info() -> dict:
    import triton
    props = triton.runtime.driver.active.utils.get_device_properties(torch.cuda.current_device())
    return dict(ok=True, **bench.environment(), capability=list(torch.cuda.get_device_capability()),
                device_count=torch.cuda.device_count(), triton_device_properties=props)


def checks(params: dict) -> tuple[tuple[str, Callable[[], dict]], ...]:
    """The checks in the order they run; `params` (params.yaml) sets the training check's recipe."""
    return (
        ("device", device_info),
        ("determinism", lambda: gpu_checks.determinism("cuda")),
        ("large_input", lambda: gpu_checks.large_input("cuda")),
        ("nan_through_activations", lambda: gpu_checks.nan_through_activations("cuda")),
        ("tf32_in_use", tf32_in_use),
        ("loss_launches", loss_launches),
        ("timings", timed),
        ("training_triton_vs_torch", lambda: gpu_checks.training_curves("cuda", params)),
        ("second_gpu", second_gpu),
        ("gpu_tests", gpu_tests),
        ("compiled_on_device", lambda: dict(ok=True, variants=compile_report.compiled_on_device())),
    )


def run_checks(checks, budget_s: float) -> dict:
    """Each check's result with its seconds; an exception fails that check only; past budget_s, not run."""
    start, results = time.perf_counter(), {}
    for name, check in checks:
        if time.perf_counter() - start > budget_s:
            results[name] = dict(ok=False, ran=False, reason=f"not run: past the {budget_s:.0f} s budget")
            continue
        t0 = time.perf_counter()
        try:
            results[name] = check()
        except Exception:  # recorded, not swallowed: the JSON carries the traceback and says failed
            results[name] = dict(ok=False, error=traceback.format_exc(limit=8))
        results[name]["seconds"] = round(time.perf_counter() - t0, 1)
    return results


def row(rows: list[dict], op: str, shape: str, impl: str) -> dict | None:
    return next((r for r in rows if r["op"] == op and r["shape"].startswith(shape) and r["dtype"] == "bfloat16"
                 and r["impl"] == impl), None)


def goals(checks: dict) -> dict:
    """The issue's targets, judged from the timings and the launch count (None where a check did not run)."""
    rows = checks.get("timings", {}).get("rows", [])
    out = {}
    for part in ("fwd", "fwd+bwd"):
        triton, eager = (row(rows, f"conv3x3_act {part}", "16x64x48x48", impl) for impl in ("triton", "eager"))
        speedup = eager["ms"] / triton["ms"] if triton and eager else None
        out[f"conv 16x64x48x48 bf16 {part}: >= 1.2x eager"] = dict(value=speedup,
                                                                   met=speedup is not None and speedup >= 1.2)
    shuffle = row(rows, "pixel_shuffle_act fwd", "16x256x128x128", "triton")
    pct = shuffle["pct_peak"] if shuffle else None
    out["pixel shuffle fwd 16x256x128x128 bf16 (> L2): >= 80% of HBM"] = dict(value=pct,
                                                                             met=pct is not None and pct >= 80)
    launches = checks.get("loss_launches", {})
    count = launches.get("triton", 0) + len(launches.get("aten", [])) if "triton" in launches else None
    out["loss fwd+bwd: <= 2 launches"] = dict(value=count, met=count is not None and count <= 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validate the Triton kernels on this CUDA GPU; one JSON.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--params", type=Path, required=True, help="params.yaml: the pretrain recipe's settings")
    parser.add_argument("--budget-s", type=float, default=450.0, help="start no check after this many seconds")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    if not torch.cuda.is_available():
        result = dict(ran=False, reason="no CUDA device: nothing to validate (run it where CUDA exists)",
                      **bench.environment())
        print(f"gpu-check: {result['reason']}")
        bench.write_json(result, args.out)
        return 0
    results = run_checks(checks(params), args.budget_s)
    result = dict(ran=True, ok=all(c["ok"] for c in results.values()), checks=results, goals=goals(results))
    bench.write_json(result, args.out)
    for name, check in results.items():
        print(f"{name:28s} {'ok' if check['ok'] else 'FAILED'} ({check.get('seconds', 0)} s)")
    for goal, judged in result["goals"].items():
        print(f"goal {goal}: {judged['value']} -> {'met' if judged['met'] else 'NOT met'}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
