"""srcore.memory: the glibc allocator policy can be set and reset; start_runtime applies the runtime param."""
import ctypes.util
from dataclasses import replace
from pathlib import Path

import pytest

from srcore import memory
from srcore.config import load_params, params_group
from srcore.runtime import start_runtime
from srcore.settings import Runtime

RUNTIME = params_group(load_params(Path(__file__).resolve().parents[1] / "params.yaml"), Runtime, "runtime")

GLIBC = memory.libc() is not None


@pytest.mark.skipif(not GLIBC, reason=f"not glibc ({ctypes.util.find_library('c')})")
def test_policy_sets_and_resets_and_start_runtime_applies_it(monkeypatch):
    try:
        assert memory.keep_freed_memory(True) and memory.keep_freed_memory(False)
        calls = []
        monkeypatch.setattr(memory, "keep_freed_memory", calls.append)
        start_runtime(replace(RUNTIME, device="cpu", keep_freed_memory=True), seed=0)
        start_runtime(replace(RUNTIME, device="cpu", keep_freed_memory=False), seed=0)
        assert calls == [True, False]
    finally:
        monkeypatch.undo()
        memory.keep_freed_memory(False)
        memory.trim()
