"""Record the Triton launches a piece of code makes, specialized exactly as Triton's JIT would for a GPU.

Inside `record_launches(arch)` every `kernel[grid](...)` goes through the JIT's own argument binder
(`JITFunction.run`): it derives the signature (`*bf16`, `i32`, `constexpr` for integers equal to 1, ...),
the `tt.divisibility` hints (pointers and integers divisible by 16) and the options, as on a real
launch for compute capability `arch`; then, instead of compiling and launching, the JIT's cache hook
records them and the launch is skipped (outputs stay uninitialised). No GPU is needed: the tensors are
CPU tensors, whose allocations are 64-byte aligned as CUDA's are (256 bytes), so a fresh tensor and a
sliced view get the same hints they would on a GPU. `kernels.compile_report` compiles what is recorded.
`count_launches` also names the aten ops a block runs, to count the kernels a call would launch.

Needs real JIT kernels: TRITON_INTERPRET unset when the kernel modules were imported.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Iterator

import torch
import triton
from torch.utils._python_dispatch import TorchDispatchMode
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.backends.driver import DriverBase

from kernels.launch import recording_scope


@dataclass(frozen=True)
class Launch:
    """One launch as the JIT specialized it: what `triton.compile(ASTSource(...), target, options)` takes."""
    kernel: triton.runtime.JITFunction = field(compare=False)
    name: str
    arch: int  # compute capability, 80 = sm_80
    signature: tuple[tuple[str, str], ...]  # (argument, type); "constexpr" for specialized arguments
    constexprs: tuple[tuple[str, object], ...]  # (argument, value)
    aligned: tuple[str, ...]  # arguments with tt.divisibility 16
    options: tuple[tuple[str, object], ...]  # the JIT's parsed options (num_warps, num_stages, arch, ...)

    def ast_source(self) -> triton.compiler.ASTSource:
        names = [p.name for p in self.kernel.params]
        attrs = {(names.index(a),): [["tt.divisibility", 16]] for a in self.aligned}
        constexprs = {(names.index(a),): v for a, v in self.constexprs}
        return triton.compiler.ASTSource(self.kernel, dict(self.signature), constexprs, attrs)

    def option_dict(self) -> dict:
        return dict(self.options)

    def retarget(self, arch: int) -> Launch:
        """The same launch as the JIT would make it on sm_<arch>: the binder's specialization does not depend
        on the target (one CUDA backend), the options are parsed again by that target's backend from the
        launch's own (those the parser derives from the target left out)."""
        backend = triton.compiler.make_backend(GPUTarget("cuda", arch, 32))
        given = {k: (list(map(list, v)) if k == "extern_libs" else v)
                 for k, v in self.options if k not in TARGET_DERIVED_OPTIONS}
        return replace(self, arch=arch, options=_options_key(backend.parse_options(given).__dict__))


class RecordingDriver(DriverBase):
    """A Triton driver for a GPU that is not there: it names the target; the cache hook stops each launch."""

    def __init__(self, arch: int):
        super().__init__()
        self.arch = arch

    @classmethod
    def is_active(cls) -> bool:
        return False  # never picked by Triton itself; only set explicitly by record_launches

    def map_python_to_cpp_type(self, ty: str) -> str:
        raise NotImplementedError("a recording driver builds no launcher")

    def get_current_target(self) -> GPUTarget:
        return GPUTarget("cuda", self.arch, 32)

    def get_active_torch_device(self) -> torch.device:
        return torch.device("cpu")

    def get_benchmarker(self):
        raise NotImplementedError("a recording driver times nothing")

    def get_current_device(self) -> str:
        return f"recording-sm{self.arch}"  # a JIT cache key of its own per target: binders are per target

    def get_current_stream(self, device=None) -> int:
        return 0


TARGET_DERIVED_OPTIONS = ("arch", "supported_fp8_dtypes", "deprecated_fp8_dot_operand_dtypes",
                          "max_num_imprecise_acc_default")


def _options_key(options: dict) -> tuple[tuple[str, object], ...]:
    """Parsed options as a hashable, sorted tuple (lists, as JSON gives them, become tuples)."""
    def frozen(v):
        return tuple(frozen(x) for x in v) if isinstance(v, (list, tuple)) else v
    return tuple((k, frozen(v)) for k, v in sorted(options.items()))


def _as_launch(kernel, arch: int, compile: dict) -> Launch:
    names = [p.name for p in kernel.params]
    data = json.loads(compile["specialization_data"])
    signature = tuple(compile["signature"].items())
    constexprs = tuple((names[path[0]], value) for path, value in compile["constants"].items())
    aligned = tuple(names[path[0]] for path, attrs in compile["configs"][0].items()
                    if ["tt.divisibility", 16] in [list(a) for a in attrs])
    return Launch(kernel, kernel.fn.__name__, arch, signature, constexprs, aligned, _options_key(data["options"]))


@contextmanager
def record_launches(arch: int) -> Iterator[list[Launch]]:
    """Record (and skip) every Triton launch in the block as specialized for sm_<arch>; yields the list."""
    if triton.knobs.runtime.interpret:
        raise RuntimeError("record_launches needs compiled kernels: unset TRITON_INTERPRET before importing "
                           "`kernels` (the interpreter has no JIT specialization to record)")
    launches: list[Launch] = []

    def hook(*, key, repr, fn, compile, is_manual_warmup, already_compiled) -> bool:
        launches.append(_as_launch(fn.jit_function, arch, compile))
        return True  # handled: the JIT neither compiles nor launches

    # The driver config's public `active` would create the default driver, which raises without a GPU.
    previous_driver, previous_hook = triton.runtime.driver._active, knobs.runtime.jit_cache_hook
    triton.runtime.driver.set_active(RecordingDriver(arch))
    knobs.runtime.jit_cache_hook = hook
    try:
        with recording_scope():
            yield launches
    finally:
        knobs.runtime.jit_cache_hook = previous_hook
        triton.runtime.driver.set_active(previous_driver)


# aten ops that run no kernel on a GPU: allocations without initialisation and metadata changes (views are
# recognised by their schema).
NO_KERNEL_OPS = frozenset({"empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided", "detach",
                           "alias", "lift_fresh", "resize_", "set_", "promote_types"})


class TorchOps(TorchDispatchMode):
    """Names the aten ops that would launch a kernel on a GPU (everything but views and allocations)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if not func.is_view and name not in NO_KERNEL_OPS:
            self.ops.append(name)
        return func(*args, **(kwargs or {}))


@contextmanager
def count_launches(arch: int = 90) -> Iterator[dict[str, list[str]]]:
    """Inside record_launches(arch): yields {"triton": kernel names, "torch": aten op names} of the launches
    the block makes, filled when it exits."""
    counts: dict[str, list[str]] = {}
    with record_launches(arch) as launches, TorchOps() as torch_ops:
        yield counts
    counts["triton"] = [launch.name for launch in launches]
    counts["torch"] = torch_ops.ops
