"""The checks of `make gpu-check`, run here at tiny sizes (on CPU: interpreted), and its no-CUDA answer."""
import json
from pathlib import Path

import pytest
import torch

from kernels import gpu_check, gpu_checks
from srcore.config import load_params

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TINY_EDSR = dict(num_feat=16, num_block=1, global_residual=True)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the interpreter's numpy on NaN
def test_nan_and_inf_propagate_as_in_the_reference():
    """NaN/Inf inputs: output and every gradient NaN exactly where PyTorch's are, for every activation, in the
    conv block and pixel shuffle (ReLU's and PReLU's gradient at NaN pass dy through, as PyTorch's do)."""
    result = gpu_checks.nan_through_activations(DEVICE)
    assert result["ok"], {k: v for k, v in result["matches"].items() if not v}


def test_two_runs_are_bitwise_equal():
    result = gpu_checks.determinism(DEVICE, shape=(2, 16, 5, 6))
    assert result["ok"], result


def test_the_large_input_check_compares_the_last_corner():
    result = gpu_checks.large_input(DEVICE, shape=(2, 16, 12, 20), crop=6)
    assert result["ok"] and not result["over_2_31"], result


def test_training_curves_of_both_backends_agree():
    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    result = gpu_checks.training_curves(DEVICE, params, steps=2, batch=2, lr_size=8, generator_args=TINY_EDSR)
    assert result["ok"] and len(result["curves"]["triton"]) == 2, result


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the check really runs (minutes)")
def test_without_cuda_it_writes_why_and_succeeds(tmp_path, capsys):
    out = tmp_path / "gpu_check.json"
    params = Path(__file__).resolve().parents[2] / "params.yaml"
    assert gpu_check.main(["--out", str(out), "--params", str(params)]) == 0
    result = json.loads(out.read_text())
    assert result["ran"] is False and "no CUDA device" in result["reason"] and result["torch"] == torch.__version__
    assert "no CUDA device" in capsys.readouterr().out


def test_a_failing_check_is_recorded_and_the_rest_still_run():
    def broken():
        raise RuntimeError("boom")

    results = gpu_check.run_checks((("broken", broken), ("fine", lambda: dict(ok=True))), budget_s=60)
    assert results["broken"]["ok"] is False and "boom" in results["broken"]["error"] and results["fine"]["ok"]
    late = gpu_check.run_checks((("late", lambda: dict(ok=True)),), budget_s=-1)["late"]
    assert late["ok"] is False and late["ran"] is False and "budget" in late["reason"]


def test_goals_are_judged_from_the_timings():
    rows = [dict(op=f"conv3x3_act {part}", shape="16x64x48x48 cl prelu+res", dtype="bfloat16", impl=impl, ms=ms)
            for part in ("fwd", "fwd+bwd") for impl, ms in (("triton", 1.0), ("eager", 1.5))]
    rows.append(dict(op="pixel_shuffle_act fwd", shape="16x256x128x128 r=2", dtype="bfloat16", impl="triton",
                     ms=1.0, pct_peak=79.0))
    goals = gpu_check.goals(dict(timings=dict(rows=rows), loss_launches=dict(triton=2, aten=[])))
    met = {name.split(":")[0]: judged["met"] for name, judged in goals.items()}
    assert met == {"conv 16x64x48x48 bf16 fwd": True, "conv 16x64x48x48 bf16 fwd+bwd": True,
                   "pixel shuffle fwd 16x256x128x128 bf16 (> L2)": False, "loss fwd+bwd": True}

