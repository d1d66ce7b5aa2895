"""Kernel benchmark (the DVC `bench` stage, `make bench`): what can be known about the kernels on this machine.

    python -m kernels.bench --out metrics/kernels.json [--no-tf32] [--fast-path]

On a CUDA device: every case of `kernels.timings` (Triton against cuDNN/eager and torch.compile, timed with
triton.testing.do_bench), and what the device compiled (registers, spills, shared memory of each variant).
Without one: the compile report (`kernels.compile_report`: every variant the models launch, compiled for
sm_80 and sm_90 by Triton's compiler on this CPU) and a roofline model of the benchmark cases
(`kernels.roofline`), labelled as a model. Both print as tables and are written as one JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch
import triton
from triton.testing import do_bench

from kernels import compile_report, roofline, timings

TIMER = "triton.testing.do_bench median (warmup 25 ms, rep 100 ms)"


def environment() -> dict:
    return dict(torch=torch.__version__, triton=triton.__version__, python=platform.python_version(),
                platform=platform.platform(), cuda=torch.version.cuda,
                device=torch.cuda.get_device_name() if torch.cuda.is_available() else None)


def cuda_timer(fn) -> float:
    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def set_tf32(enabled: bool) -> tuple[str, str]:
    """Set TF32 for cuDNN convs and cuBLAS matmuls through the fp32_precision API; returns the old values."""
    old = torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    torch.backends.cudnn.conv.fp32_precision = torch.backends.cuda.matmul.fp32_precision = (
        "tf32" if enabled else "ieee")
    return old


def time_cases(tf32: bool = True, compiled: bool = True, cases=None) -> dict:
    """Time `cases` (default: every case of kernels.timings) on the current CUDA device."""
    old = set_tf32(tf32)
    try:
        peaks = timings.device_peaks()
        rows = []
        for case in cases if cases is not None else timings.all_cases(peaks, compiled):
            torch.compiler.reset()  # a fresh dynamo cache per case: no recompile limit, no stale graphs
            rows.append(timings.measure(case, cuda_timer))
    finally:
        torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = old
    return dict(tf32=tf32, peaks=vars(peaks), timer=TIMER, rows=rows)


def model() -> list[dict]:
    return roofline.model(timings.CONV_SHAPES, timings.SHUFFLE_SHAPES)


def run(tf32: bool = True, fast_path_only: bool = False) -> dict:
    """The timings and the compiled variants on a CUDA device; the compile report (of the fast-path variants
    only with fast_path_only: what CI compiles) and the model without."""
    if torch.cuda.is_available():
        return dict(kind="timings", **environment(), **time_cases(tf32),
                    compiled_on_device=compile_report.compiled_on_device(), roofline_model=model())
    report = compile_report.build_report(fast_path_only=fast_path_only)
    return dict(environment(), **report, note="no CUDA device: nothing timed; compiled for sm_80/sm_90 on this "
                "CPU, plus a roofline model (not a measurement)", roofline_model=model())


def format_report(result: dict) -> str:
    """The tables of a `run` result."""
    if result["kind"] == "timings":
        title = f"{result['device']}, TF32 {'on' if result['tf32'] else 'off'}, {result['timer']}"
        tables = [timings.format_rows(result["rows"], title)]
    else:
        tables = [compile_report.format_table(result)]
    return "\n\n".join([*tables, roofline.format_model(result["roofline_model"])])


def dumps(result: dict) -> str:
    """JSON with each row of a list of records (variants, timing rows) on one line: readable diffs."""
    def value(v, indent):
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            inner = ",\n".join(" " * (indent + 1) + json.dumps(x) for x in v)
            return "[\n" + inner + "\n" + " " * indent + "]"
        return json.dumps(v, indent=1).replace("\n", "\n" + " " * indent)
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {value(v, 1)}" for k, v in result.items()) + "\n}\n"


def write_json(result: dict, path: Path) -> None:
    """Write result to path (parent folders made), atomically: never a half-written metrics file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(dumps(result))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the Triton kernels (or, without CUDA, compile them "
                                                 "for sm_80/sm_90 and model them).")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--no-tf32", dest="tf32", action="store_false", help="fp32 convs/matmuls in IEEE fp32")
    parser.add_argument("--fast-path", action="store_true",
                        help="without CUDA: compile only the fast-path variants (bf16, channels_last), as CI does")
    args = parser.parse_args(argv)
    result = run(tf32=args.tf32, fast_path_only=args.fast_path)
    print(format_report(result))
    write_json(result, args.out)
    return 1 if result.get("n_problems") else 0


if __name__ == "__main__":
    raise SystemExit(main())
