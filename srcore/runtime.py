"""Where and how training computes: process setup, autocast, device placement, and what of it changes numbers.

The `runtime` params group (srcore.settings.Runtime) is applied once per process by `start_runtime`; the
training step then uses `autocast` and `to_device`, and `numerics` says which runtime choices belong to a
run's identity (a checkpoint of bf16 training must not resume an fp32 run).
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from srcore import memory
from srcore.distributed import Dist, init_distributed
from srcore.ops import resolve_backend
from srcore.settings import Runtime


def start_runtime(runtime: Runtime, seed: int) -> tuple[Runtime, str, Dist]:
    """Join torchrun's process group when launched by it, apply the thread count and allocator policy,
    seed the global RNG.

    Returns the runtime with this process's device (see srcore.distributed.init_distributed), the kernel
    backend ("triton" or "torch") and the process's Dist.
    """
    device, dist = init_distributed(runtime.device)
    precision, why = resolve_precision(runtime.precision, device)
    if dist.main and runtime.precision == "auto":
        print(f"runtime: precision auto -> {precision} ({why})")
    runtime = replace(runtime, device=device, precision=precision)
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    if runtime.keep_freed_memory and torch.device(runtime.device).type == "cpu":
        memory.keep_freed_memory()  # off: glibc left exactly as it was (no mallopt call at all)
    torch.manual_seed(seed)
    return runtime, resolve_backend(runtime.kernels, runtime.device), dist


def resolve_precision(precision: str, device: str, cpu_flags: set[str] | None = None) -> tuple[str, str]:
    """`runtime.precision` as "fp32" or "bf16", and why. auto: bf16 where the device computes bf16 dot
    products natively (a CPU with AVX512_BF16 or AMX, an Arm CPU with BF16, a CUDA GPU that supports bf16),
    fp32 elsewhere: emulated bf16 is slower than fp32, and CPUs differ (see docs/performance.md)."""
    if precision != "auto":
        return precision, "set in params"
    if torch.device(device).type == "cuda":
        native = torch.cuda.is_bf16_supported()
        return ("bf16", "the GPU supports bf16") if native else ("fp32", "the GPU has no bf16")
    flags = cpu_flags if cpu_flags is not None else cpu_features()
    found = sorted(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    if found:
        return "bf16", f"the CPU has {', '.join(found)}"
    return "fp32", "the CPU has no native bf16 dot products (avx512_bf16, amx_bf16, bf16)"


def cpu_features() -> set[str]:
    """The CPU's feature flags as Linux lists them (x86 `flags`, Arm `Features`); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    lines = [line.split(":", 1)[1] for line in text.splitlines() if line.startswith(("flags", "Features"))]
    return set(lines[0].split()) if lines else set()


def autocast(runtime: Runtime):
    """bf16 autocast on the runtime's device kind, or nothing for fp32 (precision resolved by start_runtime)."""
    if runtime.precision not in ("fp32", "bf16"):
        raise ValueError(f"autocast needs a resolved precision (fp32 or bf16; see resolve_precision), "
                         f"got {runtime.precision!r}")
    if runtime.precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(runtime.device).type, dtype=torch.bfloat16)


def to_device(x: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """`x` on the runtime's device, in its memory format (channels_last for 4-D tensors when asked)."""
    x = x.to(runtime.device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if runtime.channels_last else x


def place_networks(runtime: Runtime, *networks: torch.nn.Module) -> None:
    """Move networks to the runtime's device and memory format, in training mode."""
    for net in networks:
        net.to(runtime.device).train()
        if runtime.channels_last:
            net.to(memory_format=torch.channels_last)


def numerics(runtime: Runtime, world: int) -> dict[str, Any]:
    """What of the runtime changes the numbers a run computes: the kind of device, precision, memory format,
    kernels and the number of processes (not the thread count, nor which GPU a rank got)."""
    return {"device": torch.device(runtime.device).type, "precision": runtime.precision,
            "channels_last": runtime.channels_last, "kernels": runtime.kernels, "world": world}
