"""What the launchers hand to Triton's JIT, recorded as a GPU launch would be specialized (kernels.capture).

Recording needs compiled (not interpreted) kernels, so one subprocess without TRITON_INTERPRET records
everything these tests look at and prints it as JSON.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = r'''
import json, torch
from kernels import conv_block, workloads
from kernels.capture import record_launches

def precision_of_an_fp32_conv():
    with record_launches(90) as launches:
        conv_block.conv3x3_act(torch.randn(1, 16, 4, 4), torch.randn(16, 16, 3, 3), None)
    return dict(launches[0].constexprs)["PRECISION"]

out = {"precision": {}}
for name, setting in [
        ("legacy allow_tf32=True", lambda: setattr(torch.backends.cudnn, "allow_tf32", True)),
        ("legacy allow_tf32=False", lambda: setattr(torch.backends.cudnn, "allow_tf32", False)),
        ("cudnn.conv.fp32_precision=ieee", lambda: setattr(torch.backends.cudnn.conv, "fp32_precision", "ieee")),
        ("cudnn.conv.fp32_precision=tf32", lambda: setattr(torch.backends.cudnn.conv, "fp32_precision", "tf32")),
        ("fp32_precision=tf32, conv none", lambda: (setattr(torch.backends.cudnn.conv, "fp32_precision", "none"),
                                                    setattr(torch.backends, "fp32_precision", "tf32")))]:
    setting()
    try:
        out["precision"][name] = precision_of_an_fp32_conv()
    except RuntimeError as e:
        out["precision"][name] = "raised: " + str(e)[:120]
run = workloads.all_runs("bf16", True)["default gan"]
with record_launches(80) as sm80:
    run()
with record_launches(90) as sm90:
    run()
out["retarget_equals_recording"] = sm80 == [launch.retarget(80) for launch in sm90]
out["n_launches"] = len(sm80)
with record_launches(90) as every_block:
    workloads.run_model(workloads.MODELS[0], "bf16", True)
with record_launches(90) as two_blocks:
    workloads.run_model(workloads.MODELS[0], "bf16", True, max_blocks=2)
out["two_blocks_launch_every_variant"] = set(every_block) == set(two_blocks) and len(every_block) > len(two_blocks)
tile = next(w for w in workloads.MODELS if w.sliced)
with record_launches(90) as sliced:
    workloads.run_model(tile, "fp32", True, max_blocks=1)
out["sliced_unaligned_pointers"] = sorted({(l.name, a) for l in sliced for a, t in l.signature
                                          if t.startswith("*") and a not in l.aligned})
out["sliced_launches"] = len(sliced)
out["launch_counts"] = {case: {part: len(c["triton"]) + len(c["torch"]) for part, c in parts.items()}
                        for case, parts in workloads.launch_counts().items()}
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def recorded() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_fp32_dot_precision_follows_cudnn_conv_through_either_api(recorded):
    """Triton's fp32 tl.dot uses TF32 exactly when PyTorch's cuDNN conv would, however TF32 was set; reading
    the legacy flag after the new API was used raised in torch 2.13 (every fp32 Triton conv failed)."""
    assert recorded["precision"] == {
        "legacy allow_tf32=True": "tf32", "legacy allow_tf32=False": "ieee",
        "cudnn.conv.fp32_precision=ieee": "ieee", "cudnn.conv.fp32_precision=tf32": "tf32",
        "fp32_precision=tf32, conv none": "tf32"}


def test_one_recording_serves_both_targets(recorded):
    """Retargeting a launch recorded for sm_90 gives exactly what recording for sm_80 gives."""
    assert recorded["n_launches"] > 100 and recorded["retarget_equals_recording"]


def test_two_residual_blocks_launch_every_variant_of_sixteen(recorded):
    """The compile report records models with RECORD_BLOCKS=2 blocks: the default's 16 add no variant."""
    assert recorded["two_blocks_launch_every_variant"]


def test_launches_per_call(recorded):
    """bf16 autocast, fp32 parameters, 16x64x48x48: the forward is one kernel (+1 weight copy per weight
    version, cast and permute fused); the backward 3 (identity), 4 (ReLU) or 5 (PReLU) launches, against
    4 and 11-12 before; pixel shuffle 1 + 2; the loss 1 + 1."""
    counts = recorded["launch_counts"]
    for case, backward in (("conv3x3_act prelu+residual", 5), ("conv3x3_act relu", 4),
                           ("conv3x3_act identity+residual*scale", 3)):
        assert counts[case] == {"fwd": 2, "fwd, same weights": 1, "bwd": backward}, case
    assert counts["pixel_shuffle_act prelu"] == {"fwd": 1, "fwd, same weights": 1, "bwd": 2}
    assert counts["ragan_loss"] == {"fwd": 1, "fwd, same weights": 1, "bwd": 1}


def test_a_sliced_input_reaches_the_kernels_aligned(recorded):
    """A tile cut at an odd offset would lose every alignment hint (the compiler then spills: docs/kernels.md);
    it is copied once instead, so every pointer the JIT sees is 16-byte aligned."""
    assert recorded["sliced_launches"] > 0 and recorded["sliced_unaligned_pointers"] == []
