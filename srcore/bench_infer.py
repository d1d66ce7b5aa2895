"""Inference benchmark (`make bench-infer`): output megapixels/s of `srcore.infer.upscale_tiled` per mode.

Each mode is upscale_tiled's own precision and memory format (srcore upscale runs fp32 + channels_last by
default, `--precision bf16` on request; NCHW is the baseline), with freed memory kept or not, and
torch.compile of the model. Weights are untrained (speed does not depend on them); the input is a random
LR image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from srcore import memory
from srcore.bench import MODES, Mode, interleaved, memory_policy, summary
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
    lr = torch.rand(3, config.lr_size, config.lr_size, generator=torch.Generator().manual_seed(0))
    models = {}
    for mode in modes:
        torch.manual_seed(0)
        model = build_generator(config.generator, scale=4, kernels="torch", **config.args).eval()
        models[mode.name] = torch.compile(model) if mode.compile else model
    calls = {m.name: (lambda m=m: upscale_tiled(models[m.name], lr, 4, config.tile, config.overlap,
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
