"""srcore.memory: the glibc allocator policy can be set and reset; start_runtime applies the runtime param, and
`keep_freed_memory: false` leaves glibc exactly as it was."""
import ctypes.util
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from srcore import memory
from srcore.config import load_params, params_group
from srcore.runtime import start_runtime
from srcore.settings import Runtime

RUNTIME = params_group(load_params(Path(__file__).resolve().parents[1] / "params.yaml"), Runtime, "runtime")
GLIBC = memory.libc() is not None

# In a fresh process: start the runtime, then malloc/free/malloc a 1 MiB block and count the blocks glibc
# serves by mmap while the second one is held. glibc's own behaviour adapts its mmap threshold to the size of
# a freed mmapped block, so the second 1 MiB comes from the heap (0 mmapped blocks); once mallopt has set a
# threshold (as `keep_freed_memory(False)` does) the threshold stays at 128 KiB and the block is mmapped (1).
PROBE = textwrap.dedent("""
    import ctypes, sys
    from dataclasses import replace
    from srcore.config import load_params, params_group
    from srcore.runtime import start_runtime
    from srcore.settings import Runtime
    runtime = params_group(load_params(sys.argv[1]), Runtime, "runtime")
    start_runtime(replace(runtime, device="cpu", keep_freed_memory=sys.argv[2] == "keep"), seed=0)

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallinfo2.restype = Mallinfo2
    base = libc.mallinfo2().hblks
    libc.free(libc.malloc(1 << 20))
    block = libc.malloc(1 << 20)
    print(libc.mallinfo2().hblks - base)
""")


def mmapped_blocks(policy: str) -> int:
    params = Path(__file__).resolve().parents[1] / "params.yaml"
    done = subprocess.run([sys.executable, "-c", PROBE, str(params), policy], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not GLIBC, reason=f"not glibc ({ctypes.util.find_library('c')})")
def test_keep_freed_memory_off_leaves_glibc_as_it_was():
    assert mmapped_blocks("default") == 0  # glibc's adaptive threshold: the freed size is now served by the heap
    assert mmapped_blocks("keep") == 0  # no mmap at all


@pytest.mark.skipif(not GLIBC, reason=f"not glibc ({ctypes.util.find_library('c')})")
def test_policy_sets_and_resets_and_start_runtime_applies_it(monkeypatch):
    try:
        assert memory.keep_freed_memory(True) and memory.keep_freed_memory(False)
        calls = []
        monkeypatch.setattr(memory, "keep_freed_memory", lambda *args: calls.append(args))
        start_runtime(replace(RUNTIME, device="cpu", keep_freed_memory=True), seed=0)
        start_runtime(replace(RUNTIME, device="cpu", keep_freed_memory=False), seed=0)
        assert calls == [()]  # keep asked for once; off never touches the allocator
    finally:
        monkeypatch.undo()
        memory.keep_freed_memory(False)
        memory.trim()
