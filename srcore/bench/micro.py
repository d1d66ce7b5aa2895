"""Hot-spot microbenchmarks of the training step: PReLU's backward (ATen's against `kernels.reference.prelu`)
and a fresh large allocation (page faults, see srcore.memory), each variant timed interleaved."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels import reference
from srcore import memory
from srcore.bench.common import interleaved, memory_policy, summary


def prelu_micro(shape: tuple[int, ...] = (16, 64, 24, 24), repeats: int = 30) -> list[dict]:
    """Forward + backward of ATen's PReLU against the reference's, per dtype, channels_last."""
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(shape).contiguous(memory_format=torch.channels_last).to(dtype).requires_grad_()
        weight = torch.full((shape[1],), 0.25, dtype=dtype, requires_grad=True)
        grad = torch.randn_like(x)
        variants = {"forward": lambda: F.prelu(x.detach(), weight.detach()),
                    "aten fwd+bwd": lambda: torch.autograd.grad(F.prelu(x, weight), (x, weight), grad),
                    "reference fwd+bwd": lambda: torch.autograd.grad(reference.prelu(x, weight), (x, weight), grad)}
        for name, fn in variants.items():
            fn()
        for name, seconds in interleaved(variants, repeats).items():
            rows.append({"op": f"prelu {name}", "shape": str(shape), "dtype": str(dtype)[6:], **summary(seconds)})
    return rows


def alloc_micro(shape: tuple[int, ...] = (16, 64, 96, 96), repeats: int = 15) -> list[dict]:
    """An fp32 add into a fresh tensor (default allocator, and keeping freed memory) vs into a reused one."""
    a, b = torch.rand(shape), torch.rand(shape)
    out = torch.empty(shape)
    variants = {"add, fresh output": lambda: a + b, "add, fresh output, keep_freed_memory": lambda: a + b,
                "add, out= reused buffer": lambda: torch.add(a, b, out=out)}
    times = interleaved(variants, repeats, before=memory_policy({n: "keep" in n for n in variants}, variants))
    memory.keep_freed_memory(False)
    return [{"op": name, "shape": str(shape), "dtype": "float32", **summary(s)} for name, s in times.items()]
