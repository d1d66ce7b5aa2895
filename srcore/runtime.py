"""Where and how training computes: process setup, autocast, device placement, and what of it changes numbers.

The `runtime` params group (srcore.settings.Runtime) is applied once per process by `start_runtime`; the
training step then uses `autocast` and `to_device`, and `numerics` says which runtime choices belong to a
run's identity (a checkpoint of bf16 training must not resume an fp32 run).
"""
from __future__ import annotations

import contextlib
from dataclasses import replace
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
    runtime = replace(runtime, device=device)
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    if runtime.keep_freed_memory and torch.device(runtime.device).type == "cpu":
        memory.keep_freed_memory()  # off: glibc left exactly as it was (no mallopt call at all)
    torch.manual_seed(seed)
    return runtime, resolve_backend(runtime.kernels, runtime.device), dist


def autocast(runtime: Runtime):
    """bf16 autocast on the runtime's device kind, or nothing for fp32."""
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
