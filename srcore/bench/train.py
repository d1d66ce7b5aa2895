"""Training-step benchmark (`make bench-train`): the recipes' own step (srcore.recipes) per generator and mode.

Per generator config and mode: steps/s, achieved GFLOP/s (FLOPs of one step counted by
torch.utils.flop_counter: convolutions and matmuls, forward and backward) and its share of the measured
bf16 matmul peak, and the step's peak resident memory; plus the hot-spot microbenchmarks (srcore.bench.micro).
The step is built from params.yaml's pretrain / gan groups with the config's generator swapped in.

    python -m srcore.bench.train --params params.yaml --out metrics/bench_train.json [--quick]
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from srcore import memory
from srcore.bench.common import (MODES, Mode, count_flops, environment, format_table, interleaved, matmul_peak,
                                 memory_policy, peak_memory_mb, summary, write_json)
from srcore.bench.micro import alloc_micro, prelu_micro
from srcore.config import load_params, params_group
from srcore.engine import Recipe
from srcore.models import build_generator
from srcore.recipes import gan, pretrain
from srcore.runtime import to_device
from srcore.settings import CommonSettings, GanSettings, PretrainSettings, Runtime


@dataclass(frozen=True)
class Config:
    """A generator at one size, trained on batches of `batch` LR patches of `lr_size` pixels (x4)."""
    generator: str
    args: dict = field(default_factory=dict)
    batch: int = 16
    lr_size: int = 24
    gan: bool = False  # the GAN step (G + the params' VGG-style D) instead of the pixel-loss step
    compile: bool = True  # also run the torch.compile modes (minutes of compilation per config on 2 cores)


CONFIGS = {
    "edsr-default": Config("edsr", dict(num_feat=32, num_block=16, global_residual=True)),  # params.yaml
    "edsr-baseline": Config("edsr", dict(num_feat=64, num_block=16)),
    "srresnet-default": Config("srresnet", dict(num_feat=32, num_block=16, global_residual=True), compile=False),
    "srresnet-paper": Config("srresnet", dict(num_feat=64, num_block=16), compile=False),
    # RRDBNet is ~10x EDSR-baseline per pixel: batch 4, so that one fp32 step stays a few seconds.
    "rrdb-default": Config("rrdb", dict(num_feat=32, num_block=16, global_residual=True), batch=4, compile=False),
    "rrdb-paper": Config("rrdb", dict(num_feat=64, num_block=23, num_grow_ch=32), batch=4, compile=False),
    "gan-default": Config("edsr", dict(num_feat=32, num_block=16, global_residual=True), gan=True, compile=False),
}
QUICK_CONFIGS = ("edsr-default", "gan-default")


def batch(config: Config, runtime: Runtime, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (lq, hr) in [0, 1]: (B, 3, p, p), (B, 3, 4p, 4p), on the runtime's memory format."""
    gen = torch.Generator().manual_seed(seed)
    lq = torch.rand(config.batch, 3, config.lr_size, config.lr_size, generator=gen)
    hr = torch.rand(config.batch, 3, 4 * config.lr_size, 4 * config.lr_size, generator=gen)
    return to_device(lq, runtime), to_device(hr, runtime)


def make_recipe(config: Config, mode: Mode, params: dict[str, Any]) -> tuple[Recipe, Runtime]:
    """The pipeline's recipe for `config` in `mode`: params.yaml's settings, the config's generator, a fresh
    model and optimizer (seed 0); torch.compile of its networks in a compile mode."""
    torch.manual_seed(0)
    runtime = replace(params_group(params, Runtime, "runtime"), device="cpu", precision=mode.precision,
                      channels_last=mode.channels_last, kernels="torch")
    common = CommonSettings(seed=0, scale=4)
    if config.gan:
        generator = build_generator(config.generator, scale=4, kernels="torch", **config.args)
        recipe = gan.build(replace(params_group(params, GanSettings, "gan"), batch_size=config.batch), common,
                           runtime, data={}, generator=generator, init_digest="", code="bench")
    else:
        settings = replace(params_group(params, PretrainSettings, "pretrain"), generator=config.generator,
                           generator_args=config.args, batch_size=config.batch)
        recipe = pretrain.build(settings, common, runtime, data={}, code="bench")
    if mode.compile:
        for net in recipe.state.networks.values():
            net.compile()
    return recipe, runtime


def make_step(config: Config, mode: Mode, params: dict[str, Any]) -> Callable[[], object]:
    """A closure running one training step of `config` in `mode` on a fixed random batch."""
    recipe, runtime = make_recipe(config, mode, params)
    lq, hr = batch(config, runtime)
    return lambda: recipe.step(recipe.state, lq, hr)


def bench_config(name: str, config: Config, modes: list[Mode], repeats: int, params: dict[str, Any]) -> list[dict]:
    """One row per mode: steps/s, achieved GFLOP/s, peak memory, speed-up over the first mode."""
    modes = [m for m in modes if config.compile or not m.compile]
    flops = count_flops(make_step(config, Mode("count"), params))
    steps, mems = {}, {}
    for mode in modes:
        memory.keep_freed_memory(mode.keep_memory)
        steps[mode.name] = make_step(config, mode, params)
        for _ in range(2 if mode.compile else 1):  # warm-up: oneDNN primitives, compilation
            steps[mode.name]()
        mems[mode.name] = peak_memory_mb(steps[mode.name])  # also a (second) warm-up step
    times = interleaved(steps, repeats, before=memory_policy({m.name: m.keep_memory for m in modes}, steps))
    memory.keep_freed_memory(False)
    rows = []
    for mode in modes:
        seconds = summary(times[mode.name])["median_ms"] / 1e3
        rows.append({"config": name, "mode": mode.name, "batch": config.batch, **summary(times[mode.name]),
                     "steps_per_s": round(1 / seconds, 3), "patches_per_s": round(config.batch / seconds, 1),
                     "flops_per_step": flops, "gflop_per_step": round(flops / 1e9, 1),
                     "gflops": round(flops / seconds / 1e9, 1), "peak_mem_mb": mems[mode.name]})
    for row in rows:
        row["speedup"] = round(rows[0]["median_ms"] / row["median_ms"], 2)
    return rows


def run(configs: list[str], modes: list[str], repeats: int, params: dict[str, Any], micro: bool = True) -> dict:
    """The whole benchmark as a JSON-able dict: matmul peaks, one row per (config, mode), microbenchmarks."""
    peaks = {"bf16": matmul_peak(torch.bfloat16), "fp32": matmul_peak(torch.float32)}
    rows = []
    for name in configs:
        if name not in CONFIGS:
            raise ValueError(f"unknown benchmark config {name!r}; valid: {', '.join(CONFIGS)}")
        rows += bench_config(name, CONFIGS[name], [MODES[m] for m in modes], repeats, params)
    peaks["bf16_end"] = matmul_peak(torch.bfloat16)
    # The peak is the best the machine did at either end of the run: a busy moment must not inflate "% of peak".
    peak = max(peaks["bf16"]["gflops_best"], peaks["bf16_end"]["gflops_best"])
    for row in rows:
        row["pct_peak"] = round(100 * row["gflops"] / peak, 1)
    result = {"matmul_peak": peaks, "train": rows, "configs": {n: asdict(CONFIGS[n]) for n in configs}}
    if micro:
        result["micro"] = prelu_micro() + alloc_micro()
    return result


TRAIN_COLUMNS = [("config", "config"), ("mode", "mode"), ("batch", "B"), ("steps_per_s", "steps/s"),
                 ("median_ms", "ms/step"), ("best_ms", "best ms"), ("speedup", "x fp32"), ("gflop_per_step", "GFLOP/step"),
                 ("gflops", "GFLOP/s"), ("pct_peak", "% bf16 peak*"), ("peak_mem_mb", "peak MB")]
MICRO_COLUMNS = [("op", "op"), ("shape", "shape"), ("dtype", "dtype"), ("median_ms", "median ms"),
                 ("best_ms", "best ms"), ("repeats", "n")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, required=True, help="params.yaml: the recipes' settings")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="default EDSR and GAN step only, 3 repeats")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), help="override the configs")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--repeats", type=int, help="timed steps per mode (default 3 quick, 4 full)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = args.configs or list(QUICK_CONFIGS if args.quick else CONFIGS)
    start = environment()
    result = run(configs, args.modes, args.repeats or (3 if args.quick else 4), load_params(args.params))
    write_json(args.out, result, start)
    print("matmul (2048^3 torch.mm), GFLOP/s: " + ", ".join(
        f"{k} median {v['gflops_median']}, best {v['gflops_best']}" for k, v in result["matmul_peak"].items()))
    print(format_table(result["train"], TRAIN_COLUMNS))
    print("* of the best bf16 matmul figure at the start or end of the run; FLOPs: convolutions and matmuls only")
    print(format_table(result["micro"], MICRO_COLUMNS))


if __name__ == "__main__":
    main()
