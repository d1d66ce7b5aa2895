"""glibc allocator policy for CPU training: keep freed memory instead of handing it back to the OS.

By default glibc serves blocks over its mmap threshold (at most 32 MB) with a fresh mmap and unmaps them on
free, and trims the heap top once more than its trim threshold is free. Each fresh page then page-faults
on first touch, and in this VM a fault costs microseconds: an fp32 add at (16, 64, 96, 96) (38 MB) took
~14 ms against ~2.8 ms into a reused buffer. A training step frees and reallocates the same activation
sizes every step, so keeping freed memory in the heap (no mmap, no trim) lets every step reuse it.
The cost: the process keeps its peak footprint until it exits. Outside glibc (macOS, musl) this is a no-op.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536  # glibc's defaults
NEVER_TRIM = 2**31 - 1  # mallopt takes an int


@functools.cache
def libc() -> ctypes.CDLL | None:
    """glibc, or None where the C library is another one (then every function here does nothing)."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return lib if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim") else None
    except OSError:
        return None


def keep_freed_memory(keep: bool = True) -> bool:
    """keep=True: every allocation from the heap and freed memory never trimmed; False: glibc's default
    values, but pinned: once mallopt has set them, glibc no longer adapts its mmap threshold to the sizes a
    program frees, so False is not the untouched allocator. Only benchmarks switching policies in one process
    use False; a process that wants glibc as it is must not call this at all (srcore.runtime does not).
    Returns whether the policy could be set (glibc only)."""
    lib = libc()
    if lib is None:
        return False
    mmap_max, trim = (0, NEVER_TRIM) if keep else (DEFAULT_MMAP_MAX, DEFAULT_TRIM_THRESHOLD)
    return bool(lib.mallopt(M_MMAP_MAX, mmap_max)) and bool(lib.mallopt(M_TRIM_THRESHOLD, trim))


def trim() -> None:
    """Hand the heap's free memory back to the OS now (benchmarks: measure a step's own footprint)."""
    lib = libc()
    if lib is not None:
        lib.malloc_trim(0)
