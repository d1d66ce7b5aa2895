"""Inference benchmark (`make bench-infer`): output megapixels/s of `srcore.infer.upscale_tiled` per mode.

upscale_tiled runs the model as given, in fp32 NCHW. The other modes wrap the model (`InModeModel`):
channels_last input, bf16 autocast, torch.compile, so the tiling code itself is the pipeline's. Weights
are untrained (speed does not depend on them); the input is a random LR image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from srcore import memory
from srcore.bench import MODES, Mode, interleaved, memory_policy, summary
from srcore.infer import upscale_tiled
from srcore.models import build_generator
from srcore.train import Runtime, autocast


class InModeModel(nn.Module):
    """`model` run in a mode: x (B, 3, h, w) -> (B, 3, sh, sw) float32, whatever the compute precision."""

    def __init__(self, model: nn.Module, mode: Mode):
        super().__init__()
        self.model, self.mode = model, mode
        self.runtime = Runtime(precision=mode.precision, channels_last=mode.channels_last)
        if mode.channels_last:
            model.to(memory_format=torch.channels_last)
        self.run = torch.compile(model) if mode.compile else model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.runtime):
            return self.run(x).float()


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
        models[mode.name] = InModeModel(model, mode)
    calls = {m.name: (lambda m=m: upscale_tiled(models[m.name], lr, 4, config.tile, config.overlap)) for m in modes}
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
