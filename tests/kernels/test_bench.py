"""The timing plumbing on tiny shapes (on CPU: interpreted kernels and a wall-clock timer); the compile
report that `make bench` writes without CUDA is tested in test_compile_report.py."""
import json
import time

import pytest
import torch

from kernels import bench, timings

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def wall_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - start)


def test_cases_measure_and_report():
    """Every op's cases run on this machine's device and make rows; torch.compile is left out (slow to build)."""
    peaks = timings.H100_SXM
    cases = [*timings.conv_cases(1, 16, 5, 6, torch.float32, peaks, device=DEVICE, compiled=False),
             *timings.shuffle_cases(1, 16, 3, 5, 2, torch.bfloat16, peaks, device=DEVICE, compiled=False),
             *timings.loss_cases(16, torch.float32, peaks, device=DEVICE, compiled=False)]
    assert {c.impl for c in cases} == {"triton", "eager"}
    rows = [timings.measure(c, wall_ms) for c in cases]
    # conv: (fwd, fwd+bwd) x 2 impls + (dx, dW) x 2 impls; shuffle and loss: (fwd, fwd+bwd) x 2 impls
    assert len(rows) == 8 + 4 + 4
    assert {r["op"] for r in rows} >= {"conv3x3 dx", "conv3x3 dW", "conv3x3_act fwd+bwd", "ragan_loss fwd"}
    assert all(r["ms"] > 0 and r["throughput"] > 0 and r["pct_peak"] > 0 for r in rows)
    table = timings.format_rows(rows, "title")
    header = [cell.strip() for cell in table.splitlines()[1].split(" | ")]
    assert header == ["op", "shape", "dtype", "impl", "time ms", "TFLOP/s or GB/s", "% peak"]
    assert len(table.splitlines()) == 3 + len(rows)


def test_the_triton_dx_and_dw_cases_compute_what_cudnn_does():
    """The backward parts timed alone are the real gradients (checked here against PyTorch's)."""
    x = torch.randn(2, 16, 5, 6, device=DEVICE)
    weight = torch.randn(16, 16, 3, 3, device=DEVICE) * 0.1
    case = {(c.op, c.impl): c.fn for c in timings.conv_part_cases(x, weight, 1.0, "s", 1.0)}
    for op in ("conv3x3 dx", "conv3x3 dW"):
        torch.testing.assert_close(case[(op, "triton")](), case[(op, "eager")](), rtol=1e-4, atol=1e-4)


def test_a_wrong_kernel_is_not_timed():
    with pytest.raises(RuntimeError, match="off eager by 0.5"):
        timings.check_against_eager("op", lambda: torch.ones(3), lambda: torch.full((3,), 2.0))


def test_tf32_is_set_through_the_new_api_and_restored():
    """bench sets TF32 with fp32_precision, so a user's new-API setting never meets a legacy read."""
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    old = bench.set_tf32(True)
    assert torch.backends.cudnn.conv.fp32_precision == "tf32" and old[0] == "ieee"
    torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = old
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"


def test_the_json_keeps_one_record_per_line_and_round_trips():
    result = dict(kind="compile report", n_problems=0, summary={"sm_90": {"variants": 2}},
                  variants=[dict(kernel="k", arch=90, flags={"ACT": "relu"}), dict(kernel="k", arch=80, flags={})])
    text = bench.dumps(result)
    assert json.loads(text) == result
    assert sum('"kernel": "k"' in line for line in text.splitlines()) == 2
