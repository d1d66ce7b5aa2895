"""The benchmark's plumbing on tiny CPU shapes (interpreted kernels, a wall-clock timer), and its CPU skip."""
import json
import time

import pytest
import torch

from kernels import bench


def wall_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - start)


# torch.compile imports inductor, whose torch.utils.mkldnn import warns in torch 2.13 (not ours to fix).
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_cases_measure_and_report_on_cpu():
    """Every op's fwd and fwd+bwd cases run and make rows; torch.compile is left out (slow to build on CPU)."""
    peaks = bench.H100_SXM
    cases = [*bench.conv_cases(1, 16, 5, 6, torch.float32, peaks, device="cpu"),
             *bench.shuffle_cases(1, 16, 3, 5, 2, torch.bfloat16, peaks, device="cpu"),
             *bench.loss_cases(16, torch.float32, peaks, device="cpu")]
    assert {c.impl for c in cases} == {"triton", "eager", "compile"}
    rows = [bench.measure(c, wall_ms) for c in cases if c.impl != "compile"]
    assert len(rows) == 3 * 2 * 2  # 3 ops x (fwd, fwd+bwd) x (triton, eager)
    assert {r["unit"] for r in rows} == {"TFLOP/s", "GB/s"}
    assert all(r["ms"] > 0 and r["throughput"] > 0 and r["pct_peak"] > 0 for r in rows)
    result = dict(skipped=False, device="cpu", tf32={"cudnn": False}, peaks=vars(peaks), rows=rows)
    table = bench.format_report(result)
    header = [cell.strip() for cell in table.splitlines()[1].split(" | ")]
    assert header == ["op", "shape", "dtype", "impl", "time ms", "TFLOP/s or GB/s", "% peak"]
    assert len(table.splitlines()) == 3 + len(rows) and "conv3x3_act fwd+bwd" in table
    json.dumps(result)  # rows must serialise


@pytest.mark.skipif(torch.cuda.is_available(), reason="on CUDA the benchmark really runs (minutes)")
def test_without_cuda_writes_skipped_json(tmp_path, capsys):
    out = tmp_path / "metrics" / "kernels.json"
    bench.main(["--out", str(out)])
    result = json.loads(out.read_text())
    assert result["skipped"] is True and result["reason"] == "no CUDA device"
    assert result["torch"] == torch.__version__
    assert "skipped: no CUDA device" in capsys.readouterr().out


def test_a_wrong_kernel_is_not_timed():
    with pytest.raises(RuntimeError, match="off eager by 0.5"):
        bench.check_against_eager("op", lambda: torch.ones(3), lambda: torch.full((3,), 2.0))
