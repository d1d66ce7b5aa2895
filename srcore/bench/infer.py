"""Inference benchmark (`make bench-infer`): output megapixels/s of `srcore.infer.upscale_tiled` per mode.

    python -m srcore.bench.infer --out metrics/bench_infer.json [--quick]


Each mode is upscale_tiled's own precision and memory format (srcore upscale runs fp32 + channels_last by
default, `--precision bf16` on request; NCHW is the baseline), with freed memory kept or not, and
torch.compile of the model. Weights are untrained (speed does not depend on them); the input is a random
LR image.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from srcore import memory
from srcore.bench.common import MODES, Mode, environment, format_table, interleaved, memory_policy, summary, write_json
from srcore.infer import upscale_tiled
from srcore.models import build_generator


@dataclass(frozen=True)
class InferConfig:
    generator: str
    args: dict
    lr_size: int = 192  # side of the random LR image
    tile: int = 128
    overlap: int = 40


INFER_CONFIGS = {
    "edsr-default": InferConfig("edsr", dict(num_feat=32, num_block=16, global_residual=True)),
    "srresnet-default": InferConfig("srresnet", dict(num_feat=32, num_block=16, global_residual=True)),
    "rrdb-default": InferConfig("rrdb", dict(num_feat=32, num_block=16, global_residual=True), lr_size=96),
    "edsr-baseline": InferConfig("edsr", dict(num_feat=64, num_block=16)),
    "srresnet-paper": InferConfig("srresnet", dict(num_feat=64, num_block=16)),
    "rrdb-paper": InferConfig("rrdb", dict(num_feat=64, num_block=23, num_grow_ch=32), lr_size=64),
}
QUICK_INFER_CONFIGS = ("edsr-default", "srresnet-default", "rrdb-default")


def bench_upscale(name: str, config: InferConfig, modes: list[Mode], repeats: int) -> list[dict]:
    """One row per mode: MP/s of output pixels for tiled upscaling of a random image."""
    lq = torch.rand(3, config.lr_size, config.lr_size, generator=torch.Generator().manual_seed(0))
    models = {}
    for mode in modes:
        torch.manual_seed(0)
        model = build_generator(config.generator, scale=4, kernels="torch", **config.args).eval()
        models[mode.name] = torch.compile(model) if mode.compile else model
    calls = {m.name: (lambda m=m: upscale_tiled(models[m.name], lq, 4, config.tile, config.overlap,
                                                precision=m.precision, channels_last=m.channels_last))
             for m in modes}
    for mode in modes:  # warm-up; compiles once per tile shape
        memory.keep_freed_memory(mode.keep_memory)
        calls[mode.name]()
    times = interleaved(calls, repeats, before=memory_policy({m.name: m.keep_memory for m in modes}, calls))
    memory.keep_freed_memory(False)
    megapixels = (4 * config.lr_size) ** 2 / 1e6
    rows = []
    for mode in modes:
        stats = summary(times[mode.name])
        rows.append({"config": name, "mode": mode.name, "out_mp": round(megapixels, 3), **stats,
                     "mp_per_s": round(megapixels / stats["median_ms"] * 1e3, 3)})
    for row in rows:
        row["speedup"] = round(rows[0]["median_ms"] / row["median_ms"], 2)
    return rows


def run(configs: list[str], modes: list[str], repeats: int) -> dict:
    rows = []
    for name in configs:
        if name not in INFER_CONFIGS:
            raise ValueError(f"unknown inference config {name!r}; valid: {', '.join(INFER_CONFIGS)}")
        rows += bench_upscale(name, INFER_CONFIGS[name], [MODES[m] for m in modes], repeats)
    return {"infer": rows, "configs": {n: vars(INFER_CONFIGS[n]) for n in configs}}


COLUMNS = [("config", "config"), ("mode", "mode"), ("out_mp", "out MP"), ("median_ms", "median ms"),
           ("best_ms", "best ms"), ("mp_per_s", "MP/s"), ("speedup", "x fp32")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="the default-size generators, 2 repeats, no compile")
    parser.add_argument("--configs", nargs="+", choices=list(INFER_CONFIGS))
    parser.add_argument("--modes", nargs="+", choices=list(MODES))
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--repeats", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = args.configs or list(QUICK_INFER_CONFIGS if args.quick else INFER_CONFIGS)
    modes = args.modes or [m for m in MODES if not (args.quick and MODES[m].compile)]
    start = environment()
    result = run(configs, modes, args.repeats or (2 if args.quick else 3))
    write_json(args.out, result, start)
    print(format_table(result["infer"], COLUMNS))


if __name__ == "__main__":
    main()
