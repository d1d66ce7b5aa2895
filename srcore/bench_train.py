"""Training-step benchmark (`make bench-train`): the real `train_step` and `gan_step` of srcore per mode.

Per generator config and mode: steps/s, achieved GFLOP/s (FLOPs of one step counted by
torch.utils.flop_counter: convolutions and matmuls, forward and backward) and its share of the measured
bf16 matmul peak, and the step's peak resident memory. Plus the two hot-spot microbenchmarks: PReLU's
backward (ATen's against `kernels.reference.prelu`) and a fresh large allocation (page faults).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from kernels import reference
from srcore import memory
from srcore.bench import (MODES, Mode, count_flops, interleaved, matmul_peak, memory_policy, peak_memory_mb,
                          summary)
from srcore.discriminator import VGGDiscriminator
from srcore.gan import GanSettings, gan_step, make_losses
from srcore.models import build_generator
from srcore.train import (PatchBank, PretrainSettings, Runtime, make_ema, pixel_loss, pretrain, to_device, train_step,
                          validate)


@dataclass(frozen=True)
class Config:
    """A generator at one size, trained on batches of `batch` LR patches of `lr_size` pixels (x4)."""
    generator: str
    args: dict = field(default_factory=dict)
    batch: int = 16
    lr_size: int = 24
    gan: bool = False  # the GAN step (G + the default VGG-style D) instead of the pixel-loss step
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
    """Random (lr, hr) in [0, 1]: (B, 3, p, p), (B, 3, 4p, 4p), on the runtime's memory format."""
    gen = torch.Generator().manual_seed(seed)
    lr = torch.rand(config.batch, 3, config.lr_size, config.lr_size, generator=gen)
    hr = torch.rand(config.batch, 3, 4 * config.lr_size, 4 * config.lr_size, generator=gen)
    return to_device(lr, runtime), to_device(hr, runtime)


def make_update(config: Config, mode: Mode) -> Callable[[torch.Tensor, torch.Tensor], object]:
    """A function (lr, hr) -> one full training step of `config` in `mode` (fresh model, Adam, EMA)."""
    torch.manual_seed(0)
    runtime = Runtime(precision=mode.precision, channels_last=mode.channels_last, kernels="torch")
    generator = build_generator(config.generator, scale=4, kernels="torch", **config.args).train()
    nets = [generator] + ([VGGDiscriminator(num_feat=32).train()] if config.gan else [])
    for net in nets:
        if mode.channels_last:
            net.to(memory_format=torch.channels_last)
    opts = [torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.99)) for net in nets]
    ema = make_ema(generator, 0.999)
    run = [torch.compile(net) if mode.compile else net for net in nets]
    loss_fn = pixel_loss("l1")
    losses = make_losses(GanSettings(), "torch", "cpu") if config.gan else None

    def update(lr: torch.Tensor, hr: torch.Tensor) -> None:  # as the loops of srcore.train / srcore.gan
        lr, hr = to_device(lr, runtime), to_device(hr, runtime)
        if losses is None:
            train_step(run[0], ema, opts[0], loss_fn, lr, hr, runtime)
            return
        gan_step(run[0], run[1], opts[0], opts[1], lr, hr, losses, runtime)
        ema.update_parameters(generator)
    return update


def make_step(config: Config, mode: Mode) -> Callable[[], object]:
    """A closure running one training step of `config` in `mode` on a fixed random batch."""
    update = make_update(config, mode)
    lr, hr = batch(config, Runtime(channels_last=mode.channels_last))
    return lambda: update(lr, hr)


def bench_config(name: str, config: Config, modes: list[Mode], repeats: int) -> list[dict]:
    """One row per mode: steps/s, achieved GFLOP/s, peak memory, speed-up over the first mode."""
    modes = [m for m in modes if config.compile or not m.compile]
    flops = count_flops(make_step(config, Mode("count")))
    steps, mems = {}, {}
    for mode in modes:
        memory.keep_freed_memory(mode.keep_memory)
        steps[mode.name] = make_step(config, mode)
        for _ in range(2 if mode.compile else 1):  # warm-up: oneDNN primitives, compilation
            steps[mode.name]()
        mems[mode.name] = peak_memory_mb(steps[mode.name])  # also a (second) warm-up step
    times = interleaved(steps, repeats, before=memory_policy({m.name: m.keep_memory for m in modes}, steps))
    memory.keep_freed_memory(False)
    rows = []
    for mode in modes:
        stats = summary(times[mode.name])
        seconds = stats["median_ms"] / 1e3
        rows.append({"config": name, "mode": mode.name, "batch": config.batch, **stats,
                     "steps_per_s": round(1 / seconds, 3), "patches_per_s": round(config.batch / seconds, 1),
                     "flops_per_step": flops, "gflop_per_step": round(flops / 1e9, 1),
                     "gflops": round(flops / seconds / 1e9, 1),
                     "peak_mem_mb": mems[mode.name]})
    base = rows[0]["median_ms"]
    for row in rows:
        row["speedup"] = round(base / row["median_ms"], 2)
    return rows


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


def run(configs: list[str], modes: list[str], repeats: int, micro: bool = True) -> dict:
    """The whole benchmark as a JSON-able dict: matmul peaks, one row per (config, mode), microbenchmarks."""
    peaks = {"bf16": matmul_peak(torch.bfloat16), "fp32": matmul_peak(torch.float32)}
    rows = []
    for name in configs:
        if name not in CONFIGS:
            raise ValueError(f"unknown benchmark config {name!r}; valid: {', '.join(CONFIGS)}")
        rows += bench_config(name, CONFIGS[name], [MODES[m] for m in modes], repeats)
    peaks["bf16_end"] = matmul_peak(torch.bfloat16)
    # The peak is the best the machine did at either end of the run: a busy moment must not inflate "% of peak".
    peak = max(peaks["bf16"]["gflops_best"], peaks["bf16_end"]["gflops_best"])
    for row in rows:
        row["pct_peak"] = round(100 * row["gflops"] / peak, 1)
    result = {"matmul_peak": peaks, "train": rows, "configs": {n: asdict(CONFIGS[n]) for n in configs}}
    if micro:
        result["micro"] = prelu_micro() + alloc_micro()
    return result


def precision_check(train: Path, val: Path, steps: int, seeds: tuple[int, ...], patches: int = 2000) -> list[dict]:
    """Validation PSNR (Y channel; EMA and raw weights) of the same short pretrain run in fp32 NCHW and in bf16 + channels_last.

    A tiny EDSR (16 features, 4 blocks, global residual) on the first `patches` training patches; the
    runs differ only in precision and memory format. Returns one row per (seed, precision).
    """
    bank = PatchBank.from_h5(train, seed=0, scale=4)
    val_bank = PatchBank.from_h5(val, seed=0, scale=4)
    # EMA decay 0.99: with the pipeline's 0.999, 0.999^600 = 55% of the EMA would still be the shared init.
    settings = PretrainSettings(generator="edsr", generator_args=dict(num_feat=16, num_block=4, global_residual=True),
                                steps=steps, batch_size=16, ema_decay=0.99, log_every=steps, val_every=steps,
                                ckpt_every=steps)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            subset = PatchBank(bank.lr[:patches], bank.hr[:patches], seed)
            for precision, channels_last in (("fp32", False), ("bf16", True)):
                runtime = Runtime(precision=precision, channels_last=channels_last, kernels="torch")
                torch.manual_seed(seed)
                model = build_generator("edsr", scale=4, kernels="torch", **settings.generator_args)
                start = time.perf_counter()
                ema = pretrain(model, subset, val_bank, settings, runtime, scale=4, checkpoint=Path(tmp) / "c.pt")
                seconds = time.perf_counter() - start
                rows.append({"seed": seed, "precision": precision, "channels_last": channels_last, "steps": steps,
                             "val_psnr_ema": round(validate(ema.module, val_bank, 4, runtime), 4),
                             "val_psnr_model": round(validate(model, val_bank, 4, runtime), 4),
                             "seconds": round(seconds, 1)})
                (Path(tmp) / "c.pt").unlink()
    return rows
