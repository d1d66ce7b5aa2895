"""Compile report: every Triton variant the models launch, compiled for real GPUs on this CPU.

    python -m kernels.compile_report [--fast-path] [--arch 80 90] [--json OUT]

The workloads (`kernels.workloads`) run with their launches recorded as the JIT specializes them for each
target (`kernels.capture`); each distinct variant is then compiled by Triton's own compiler for sm_80
(A100) and sm_90 (H100), and the cubin is read with the cuobjdump that ships with Triton: registers,
spilled stack bytes and local loads/stores, shared memory (what the launch needs), tensor-core MMA
(HMMA/HGMMA), async copies (LDGSTS) and, in the PTX, NaN-propagating max (`max.NaN`) for ReLU.
What the compiler says is a fact about the GPU; the CPU interpreter is not consulted.
Needs compiled kernels: run it without TRITON_INTERPRET.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget

from kernels import conv_block, workloads
from kernels.capture import Launch, record_launches

CUOBJDUMP = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"


@dataclass(frozen=True)
class Target:
    arch: int
    name: str
    shared_bytes: int  # opt-in shared memory per block (what Triton checks a launch against)


TARGETS = {80: Target(80, "A100 (sm_80)", 166912), 90: Target(90, "H100 (sm_90)", 232448)}
CONSUMER = Target(86, "RTX 30/40 class (sm_86/sm_89)", 101376)  # 99 KiB; same tiles as sm_80 there
DOT_KERNELS = ("conv3x3_fwd_kernel", "conv3x3_dw_kernel")
ACT_NAMES = {code: name for name, code in conv_block.ACT_CODES.items()}
CHANNEL_STRIDES = ("sxc", "sgc", "szc", "sdc")  # the channel stride of a kernel's first tensor argument
PIXEL_STRIDES = ("sxw", "sgw", "szw", "sdw")
CHANNEL_COUNTS = ("C_IN", "C_OUT", "C")


def describe(launch: Launch) -> dict:
    """The variant's identity in words: kernel, dtype, layout, alignment, flags (from the JIT's own view)."""
    sig, const = dict(launch.signature), dict(launch.constexprs)
    first = next(t for t in sig.values() if t.startswith("*"))
    layout = ("NHWC" if any(const.get(s) == 1 for s in CHANNEL_STRIDES)
              else "NCHW" if any(const.get(s) == 1 for s in PIXEL_STRIDES) else "-")
    pointers = [a for a, t in sig.items() if t.startswith("*")]
    channels = [a for a in CHANNEL_COUNTS if a in sig]
    flags = {k: (ACT_NAMES[v] if k == "ACT" else v) for k, v in const.items() if k.isupper()}
    return dict(kernel=launch.name, arch=launch.arch, dtype=first[1:], layout=layout,
                pointers_aligned=all(p in launch.aligned for p in pointers),
                channels_aligned=all(c in launch.aligned for c in channels),
                unhinted=[a for a, t in sig.items() if t in ("i32", "i64") and a not in launch.aligned],
                flags=flags, num_warps=dict(launch.options)["num_warps"],
                num_stages=dict(launch.options)["num_stages"])


def is_fast_path(v: dict) -> bool:
    """channels_last, bf16/fp16, 16-aligned pointers and channel counts: the layout training runs."""
    return v["layout"] == "NHWC" and v["dtype"] in ("bf16", "fp16") and v["pointers_aligned"] and v["channels_aligned"]


def sass_facts(cubin: bytes) -> dict:
    """Registers, stack bytes, local loads/stores, MMA and async-copy instruction counts of a cubin."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        usage = subprocess.run([CUOBJDUMP, "-res-usage", path], capture_output=True, text=True, check=True).stdout
        sass = subprocess.run([CUOBJDUMP, "-sass", path], capture_output=True, text=True, check=True).stdout
    res = re.search(r"REG:(\d+) STACK:(\d+) SHARED:\d+ LOCAL:(\d+)", usage)
    ops = [op.split(".")[0] for op in re.findall(r"^\s+/\*[0-9a-f]{4}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)",
                                                 sass, re.M)]
    count = lambda *names: sum(ops.count(n) for n in names)  # noqa: E731
    return dict(n_regs=int(res[1]), n_spills=int(res[2]) + int(res[3]), local_ops=count("LDL", "STL"),
                mma=count("HMMA", "HGMMA"), async_copies=count("LDGSTS", "UTMALDG"))


def compile_launch(launch: Launch) -> dict:
    """Compile one recorded launch for its target; the facts of the result (n_spills in bytes per thread)."""
    start = time.perf_counter()
    kernel = triton.compile(launch.ast_source(), target=GPUTarget("cuda", launch.arch, 32),
                            options=launch.option_dict())
    ptx = kernel.asm["ptx"]
    return dict(**sass_facts(kernel.asm["cubin"]), shared=kernel.metadata.shared,
                nan_max=ptx.count("max.NaN"), plain_max=len(re.findall(r"\bmax\.(?:f32|bf16|f16)\b", ptx)),
                compile_s=time.perf_counter() - start)


def problems(v: dict) -> list[str]:
    """What is wrong with a compiled variant: every check the report enforces, in words."""
    found = []
    target_shared = TARGETS[v["arch"]].shared_bytes
    if v["shared"] > min(target_shared, conv_block.max_shared_bytes()):
        found.append(f"needs {v['shared']} B of shared memory; {TARGETS[v['arch']].name} has {target_shared}, "
                     f"and `auto` promises at most conv_block.max_shared_bytes() = {conv_block.max_shared_bytes()}")
    if v["shared"] > CONSUMER.shared_bytes and v["arch"] == 80:
        found.append(f"needs {v['shared']} B of shared memory; {CONSUMER.name} cards have {CONSUMER.shared_bytes}")
    if v["flags"].get("ACT") == "relu" and v["kernel"] != "act_bwd_kernel" and not v["nan_max"]:
        found.append("ReLU compiled without a NaN-propagating max")
    if v["kernel"] == "_ragan_fwd_kernel" and not v["async_copies"]:
        found.append("the RaGAN forward's loads are not pipelined (no async copies)")
    if v["fast_path"]:
        if v["n_spills"] or v["local_ops"]:
            found.append(f"fast-path variant spills: {v['n_spills']} B of stack, {v['local_ops']} local loads/stores")
        if v["kernel"] in DOT_KERNELS and not v["mma"]:
            found.append("fast-path variant lacks tensor-core MMA")
        if v["kernel"] in DOT_KERNELS and not v["async_copies"]:
            found.append("fast-path variant loads its tiles without async copies")
    return found


RECORD_BLOCKS = 2  # residual blocks per model while recording: all blocks of a model launch the same variants


def record(archs: tuple[int, ...], modes: list[tuple[str, bool]]) -> dict[Launch, set[str]]:
    """Every distinct launch of every workload in every (precision, channels_last) mode, for each arch,
    with the names of the workloads that make it. Recorded once, for sm_90, and retargeted (`Launch.retarget`
    reproduces what recording on the other target gives; tests check it)."""
    seen: dict[Launch, set[str]] = {}
    for precision, channels_last in modes:
        for name, run in workloads.all_runs(precision, channels_last, RECORD_BLOCKS).items():
            with record_launches(90) as launches:
                run()
            label = f"{name} [{precision}, {'channels_last' if channels_last else 'NCHW'}]"
            for launch in set(launches):
                for arch in archs:
                    seen.setdefault(launch if arch == 90 else launch.retarget(arch), set()).add(label)
    return seen


FAST_MODES = [("bf16", True)]  # what training runs (fp16 compiles to the same code paths; make bench has it)
ALL_MODES = [("bf16", True), ("fp16", True), ("bf16", False), ("fp32", True), ("fp32", False)]


def build_report(archs: tuple[int, ...] = (80, 90), fast_path_only: bool = False, jobs: int = 2) -> dict:
    """Record, compile and check. fast_path_only: the fast modes, and only their fast-path variants plus the
    ones with a check of their own (ReLU, RaGAN) - what CI compiles."""
    seen = record(archs, FAST_MODES if fast_path_only else ALL_MODES)
    variants = []
    for launch, names in seen.items():
        v = describe(launch) | dict(fast_path=False, workloads=sorted(names))
        v["fast_path"] = is_fast_path(v)
        if fast_path_only and not (v["fast_path"] or v["flags"].get("ACT") == "relu"
                                   or v["kernel"] == "_ragan_fwd_kernel"):
            continue
        variants.append((launch, v))
    with ThreadPoolExecutor(jobs) as pool:  # ptxas and cuobjdump run as subprocesses
        facts = list(pool.map(compile_launch, [launch for launch, _ in variants]))
    rows = [v | f for (_, v), f in zip(variants, facts)]
    compile_s = sum(row.pop("compile_s") for row in rows)  # a cost, not a fact of the variant: kept out of rows
    for row in rows:
        row["problems"] = problems(row)
    rows.sort(key=lambda r: (r["arch"], r["kernel"], r["layout"], r["dtype"], str(r["flags"])))
    return dict(kind="compile report", triton=triton.__version__,
                targets={t.name: t.shared_bytes for t in (*TARGETS.values(), CONSUMER)},
                max_shared_bytes=conv_block.max_shared_bytes(), n_problems=sum(len(r["problems"]) for r in rows),
                summary=summarize(rows) | {"compile_seconds": round(compile_s)}, variants=rows)


def summarize(rows: list[dict]) -> dict:
    """Per target: counts and extremes (what `dvc metrics show/diff` displays; it skips the variant list)."""
    out = {}
    for arch in sorted({r["arch"] for r in rows}):
        mine = [r for r in rows if r["arch"] == arch]
        fast = [r for r in mine if r["fast_path"]] or [dict(n_regs=0)]
        out[f"sm_{arch}"] = dict(variants=len(mine), fast_path=sum(r["fast_path"] for r in mine),
                                 spilling=sum(1 for r in mine if r["n_spills"] or r["local_ops"]),
                                 max_regs=max(r["n_regs"] for r in mine),
                                 max_regs_fast_path=max(r["n_regs"] for r in fast),
                                 max_shared=max(r["shared"] for r in mine))
    return out


def jit_kernels() -> list[triton.runtime.JITFunction]:
    """Every Triton kernel the ops launch."""
    from kernels import conv_block_kernels, pixel_shuffle, ragan_loss
    modules = (conv_block_kernels, pixel_shuffle, ragan_loss)
    return [k for m in modules for k in vars(m).values()
            if isinstance(k, triton.runtime.JITFunction) and k.fn.__name__.endswith("_kernel")]


def compiled_on_device() -> list[dict]:
    """The variants this process compiled on its CUDA device(s), from the JIT's own caches: what the driver
    reports (n_regs, n_spills) and what the cubin shows (MMA, async copies), with the specialization."""
    rows = []
    for kernel in jit_kernels():
        for device, (cache, *_) in kernel.device_caches.items():
            for compiled in cache.values():
                compiled._init_handles()  # loads the module (if a launch has not yet): sets n_regs, n_spills
                rows.append(dict(kernel=kernel.fn.__name__, device=str(device), n_regs=compiled.n_regs,
                                 n_spills=compiled.n_spills, shared=compiled.metadata.shared,
                                 num_warps=compiled.metadata.num_warps, num_stages=compiled.metadata.num_stages,
                                 **{k: v for k, v in sass_facts(compiled.asm["cubin"]).items()
                                    if k in ("mma", "async_copies", "local_ops")},
                                 constants={str(k): str(v) for k, v in compiled.src.constants.items()}
                                 if hasattr(compiled, "src") else None))
    return rows


def short_flags(flags: dict) -> str:
    """The constexpr flags that tell variants apart, compactly (block sizes and dot settings left out)."""
    keep = {k: v for k, v in flags.items() if not k.startswith("BLOCK") and k not in ("DOT_FP32", "PRECISION")}
    return " ".join(f"{k}={v}" for k, v in keep.items())


def format_table(report: dict) -> str:
    """One line per compiled variant: what it is, what the compiler made of it, and any problem."""
    header = ("arch", "kernel", "dtype", "layout", "flags", "warps/stages", "regs", "spill B", "local ld/st",
              "shared KiB", "MMA", "async", "NaN max", "fast", "problems")
    lines = [(f"sm_{r['arch']}", r["kernel"].strip("_").removesuffix("_kernel"), r["dtype"], r["layout"],
              short_flags(r["flags"]), f"{r['num_warps']}/{r['num_stages']}", str(r["n_regs"]), str(r["n_spills"]),
              str(r["local_ops"]), f"{r['shared'] / 1024:.1f}", str(r["mma"]), str(r["async_copies"]),
              str(r["nan_max"]), "yes" if r["fast_path"] else "", "; ".join(r["problems"]))
             for r in report["variants"]]
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header))]
    fmt = lambda row: " | ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()  # noqa: E731
    title = (f"compile report (Triton {report['triton']}, compiled on this CPU; a fact about the GPU, not a "
             f"timing): {len(report['variants'])} variants, {report['n_problems']} problems")
    return "\n".join([title, fmt(header), "-+-".join("-" * w for w in widths), *map(fmt, lines)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compile every Triton variant the models launch for sm_80/sm_90.")
    parser.add_argument("--fast-path", action="store_true", help="only the fast-path variants (what CI compiles)")
    parser.add_argument("--arch", type=int, nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compiles")
    args = parser.parse_args(argv)
    report = build_report(tuple(args.arch), args.fast_path, args.jobs)
    print(format_table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 1 if report["n_problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
