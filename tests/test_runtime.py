"""srcore.runtime: `precision: auto` picks bf16 only where the device computes it natively, and says so."""
from dataclasses import replace
from pathlib import Path

import pytest

from srcore.config import load_params, params_group
from srcore.runtime import autocast, numerics, resolve_precision, start_runtime
from srcore.settings import Runtime

RUNTIME = params_group(load_params(Path(__file__).resolve().parents[1] / "params.yaml"), Runtime, "runtime")


@pytest.mark.parametrize("flags, expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, "bf16"),  # AMD Zen 4, Intel Cooper Lake
    ({"avx2", "amx_tile", "amx_bf16"}, "bf16"),    # Intel Sapphire Rapids
    ({"fp", "asimd", "bf16"}, "bf16"),             # Arm (Neoverse V1, Graviton 3)
    ({"avx2", "avx512f"}, "fp32"),                 # AVX-512 without bf16 (Skylake-SP): emulated bf16 is slow
    (set(), "fp32"),
])
def test_auto_precision_follows_the_cpus_bf16_support(flags: set[str], expected: str):
    assert resolve_precision("auto", "cpu", flags)[0] == expected
    assert resolve_precision("fp32", "cpu", {"avx512_bf16"}) == ("fp32", "set in params")


def test_start_runtime_resolves_auto_says_which_and_the_run_records_the_resolved_one(capsys, monkeypatch):
    monkeypatch.setattr("srcore.runtime.cpu_features", lambda: {"avx512_bf16"})
    runtime, _, _ = start_runtime(replace(RUNTIME, device="cpu", precision="auto", keep_freed_memory=False), seed=0)
    assert runtime.precision == "bf16" and "precision auto -> bf16 (the CPU has avx512_bf16)" in capsys.readouterr().out
    assert numerics(runtime, 1) == numerics(replace(runtime, precision="bf16"), 1)  # the same run as explicit bf16
    with pytest.raises(ValueError, match="resolved precision"):
        autocast(replace(runtime, precision="auto"))
