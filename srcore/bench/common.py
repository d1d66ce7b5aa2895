"""What the CPU benchmarks share: modes, interleaved timing, FLOPs, peak memory, tables and their JSON.

Timings on a shared 2-core machine are noisy, so variants are measured interleaved (A B C A B C ...) in
one process and reported as medians (and the best run) of several repeats, next to `os.getloadavg()`.
A mode is a precision, a memory format, torch.compile or not, and the allocator policy (see
`srcore.memory`); every number of a table comes from the same run.
"""
from __future__ import annotations

import json
import os
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from srcore import memory


@dataclass(frozen=True)
class Mode:
    """How a step runs: autocast precision, NHWC or NCHW, torch.compile, and whether freed memory is kept."""
    name: str
    precision: str = "fp32"       # fp32 | bf16 (autocast)
    channels_last: bool = False
    compile: bool = False
    keep_memory: bool = False     # srcore.memory.keep_freed_memory during the step


MODES = {m.name: m for m in (
    Mode("fp32"),
    Mode("fp32+cl", channels_last=True),
    Mode("bf16+cl", "bf16", channels_last=True),
    Mode("bf16+cl+keep", "bf16", channels_last=True, keep_memory=True),
    Mode("bf16+cl+compile", "bf16", channels_last=True, compile=True),
)}


def environment() -> dict:
    """What the figures were measured on: load average, threads, torch version, CPU model."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "unknown")
    return {"loadavg": [round(v, 2) for v in os.getloadavg()], "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "cpu": cpu, "torch": torch.__version__}


def time_once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(variants: dict[str, Callable[[], object]], repeats: int, before: Callable[[str], None] | None = None
                ) -> dict[str, list[float]]:
    """Seconds per call of each variant, measured round-robin `repeats` times (`before(name)` runs untimed)."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            if before is not None:
                before(name)
            times[name].append(time_once(fn))
    return times


def summary(seconds: list[float]) -> dict[str, float]:
    """Median and best of a list of per-call times, in ms."""
    return {"median_ms": round(1e3 * statistics.median(seconds), 3), "best_ms": round(1e3 * min(seconds), 3),
            "repeats": len(seconds)}


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call (matmuls and convolutions, forward and backward) by torch.utils.flop_counter."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_peak(dtype: torch.dtype = torch.bfloat16, n: int = 2048, repeats: int = 10) -> dict[str, float]:
    """Achieved GFLOP/s of an (n, n) @ (n, n) torch.mm in `dtype`: the practical peak for "% of peak".

    On this AMX CPU the first bf16 calls ran at ~800 GFLOP/s and later ones at ~2000: warm up well.
    """
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    out = torch.empty(n, n, dtype=dtype)
    for _ in range(5):  # warm-up: oneDNN picks its kernel, the AMX tiles and clocks come up
        torch.mm(a, b, out=out)
    times = [time_once(lambda: torch.mm(a, b, out=out)) for _ in range(repeats)]
    flops = 2 * n**3
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "gflops_median": round(flops / statistics.median(times) / 1e9, 1),
            "gflops_best": round(flops / min(times) / 1e9, 1)}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory_mb(fn: Callable[[], object], interval: float = 5e-4) -> float:
    """Peak growth of the process's resident memory during one call, in MB (sampled every `interval` s).

    Free heap memory is handed back first (malloc_trim), so the growth is what the call itself touches:
    its activations, gradients and workspaces, whatever the allocator policy.
    """
    memory.trim()
    base = peak = rss_bytes()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes())
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    return round((max(peak, rss_bytes()) - base) / 2**20, 1)


def format_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A plain-text table of `rows` with (key, header) columns; missing values print as '-'."""
    cells = [[header for _, header in columns]]
    cells += [["-" if row.get(key) is None else str(row[key]) for key, _ in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def memory_policy(keep_of: dict[str, bool], calls: dict[str, Callable[[], object]]) -> Callable[[str], None]:
    """A `before` hook for `interleaved`: sets each variant's allocator policy (srcore.memory).

    Runs never switch policy, so each turn starts from that policy's steady state: switching to "keep"
    runs the variant once untimed (a kept heap is filled after one step); switching to the default hands
    the free heap back first (malloc_trim), else glibc would serve big blocks from memory the keep turn
    left behind and the default would not page-fault as it does in a run of its own.
    """
    current: dict[str, bool | None] = {"keep": None}

    def before(name: str) -> None:
        keep = keep_of[name]
        if keep != current["keep"]:
            memory.keep_freed_memory(keep)
            current["keep"] = keep
            if keep:
                calls[name]()
            else:
                memory.trim()
    return before


def write_json(out: Path, result: dict, start: dict) -> None:
    """Write `result` with the environment at its start and now to `out`, and print the environment line."""
    end = environment()
    result["environment"] = {"start": start, "end": end}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"load average at start {start['loadavg']}, at end {end['loadavg']}; {start['threads']} threads, "
          f"torch {start['torch']}, {start['cpu']}")
