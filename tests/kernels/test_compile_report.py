"""The compile report as CI runs it: every fast-path variant the models launch (bf16, channels_last), compiled
by Triton's own compiler for sm_80 (A100) and sm_90 (H100) on this CPU, and read from the cubin.

One subprocess (no TRITON_INTERPRET: the JIT must specialize and compile) builds the report; the tests
read it. It costs about a minute on 2 cores with an empty Triton cache (see docs/kernels.md).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kernels import bench, compile_report, conv_block, workloads

ROOT = Path(__file__).resolve().parents[2]
FAST_PATH_KERNELS = {"conv3x3_fwd_kernel", "conv3x3_dw_kernel", "act_bwd_kernel", "_pixel_shuffle_fwd_kernel",
                     "_pixel_shuffle_bwd_kernel"}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("report") / "report.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-m", "kernels.compile_report", "--fast-path", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.exists(), proc.stderr[-3000:]
    return json.loads(out.read_text()) | {"returncode": proc.returncode, "table": proc.stdout}


def test_no_fast_path_variant_spills_lacks_mma_or_exceeds_shared_memory(report):
    failing = [(v["arch"], v["kernel"], v["flags"], v["problems"]) for v in report["variants"] if v["problems"]]
    assert not failing and report["returncode"] == 0, failing


def test_every_fast_path_kernel_is_compiled_for_both_targets(report):
    compiled = {(v["arch"], v["kernel"]) for v in report["variants"] if v["fast_path"]}
    assert compiled >= {(arch, k) for arch in (80, 90) for k in FAST_PATH_KERNELS}
    mma = {v["arch"]: v["mma"] for v in report["variants"] if v["kernel"] == "conv3x3_fwd_kernel"}
    assert mma[80] > 0 and mma[90] > 0  # HMMA on sm_80, HGMMA on sm_90


def test_relu_compiles_to_a_nan_propagating_max(report):
    """A plain max is maxnum on a GPU (NaN -> 0): ReLU must compile to max.NaN, in the conv and the shuffle."""
    relu = [v for v in report["variants"] if v["flags"].get("ACT") == "relu" and v["kernel"] != "act_bwd_kernel"]
    assert {v["kernel"] for v in relu} >= {"conv3x3_fwd_kernel"}
    assert all(v["nan_max"] > 0 for v in relu), [(v["arch"], v["kernel"]) for v in relu if not v["nan_max"]]


def test_the_ragan_forward_pipelines_its_loads(report):
    ragan = [v for v in report["variants"] if v["kernel"] == "_ragan_fwd_kernel"]
    assert {v["arch"] for v in ragan} == {80, 90} and all(v["async_copies"] > 0 for v in ragan)


def test_shared_memory_stays_within_what_auto_checks(report):
    """`auto` picks Triton where a block may use conv_block.max_shared_bytes(); no variant uses more, and that
    fits the 99 KiB of RTX 30/40-class cards as well as A100 and H100."""
    assert conv_block.max_shared_bytes() <= compile_report.CONSUMER.shared_bytes
    assert max(v["shared"] for v in report["variants"]) <= conv_block.max_shared_bytes()


def test_bench_prints_the_report_and_the_roofline_model(report):
    text = bench.format_report(report | {"kind": "compile report", "roofline_model": bench.model()})
    assert "compile report (Triton" in text and "roofline MODEL (not a measurement)" in text
    assert "sm_80" in text and "sm_90" in text and "conv3x3_fwd" in text


def test_problems_names_each_failed_check():
    ok = dict(arch=90, kernel="conv3x3_fwd_kernel", flags={"ACT": "relu"}, shared=1024, nan_max=1, n_spills=0,
              local_ops=0, mma=8, async_copies=4, fast_path=True)
    assert compile_report.problems(ok) == []
    for change, words in ((dict(n_spills=16, local_ops=4), "spills"), (dict(mma=0), "MMA"),
                          (dict(async_copies=0), "async copies"), (dict(nan_max=0), "NaN-propagating"),
                          (dict(shared=conv_block.max_shared_bytes() + 1), "shared memory")):
        found = compile_report.problems(ok | change)
        assert len(found) == 1 and words in found[0], (change, found)


def test_the_default_workload_is_params_yaml():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    default = workloads.MODELS[0]
    assert default.generator == params["pretrain"]["generator"]
    assert default.generator_args == params["pretrain"]["generator_args"]
    assert default.batch == params["pretrain"]["batch_size"] == params["gan"]["batch_size"]
    assert default.scale == params["common"]["scale"]
    scale = params["common"]["scale"]
    assert default.lr_size == params["pretrain"]["patch_size"] // scale == params["gan"]["patch_size"] // scale
    # The fast modes: bf16 (or "auto", which is bf16 on every GPU the kernels run on: compute capability >= 8.0)
    assert params["runtime"]["precision"] in ("bf16", "auto") and params["runtime"]["channels_last"]
