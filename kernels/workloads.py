"""What the models launch: one training step of the default and the paper configs, and the benchmark shapes.

Each workload runs for real on CPU tensors with kernels="triton"; inside `kernels.capture.record_launches`
its Triton launches are recorded as the JIT specializes them for a GPU (and skipped), so the compile
report covers exactly the variants the models launch, derived from the launchers themselves.
The default config mirrors params.yaml (tests/kernels/test_compile_report.py checks that it does); the
paper configs are the README presets at this repository's patch size. A GAN step adds the RaGAN loss,
for D and for G, on (batch, 1) logits in the autocast dtype (what VGGDiscriminator's last linear layer
gives under autocast).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import torch

from kernels import conv_block, pixel_shuffle, ragan_loss
from srcore.models import build_generator

PRECISIONS = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass(frozen=True)
class Workload:
    """One training step (or a no-grad forward) of a generator on (batch, 3, lr_size, lr_size) inputs."""
    name: str
    generator: str
    generator_args: dict = field(hash=False)
    scale: int = 4
    batch: int = 16
    lr_size: int = 24
    train: bool = True
    gan: bool = False
    sliced: bool = False  # the input is a view at an odd offset (a crop), as tiled inference makes
    precision: str | None = None  # fixed, whatever the mode (inference runs fp32 by default)


DEFAULT_ARGS = dict(num_feat=32, num_block=16, global_residual=True)  # params.yaml pretrain.generator_args
MODELS = (
    Workload("default pretrain", "edsr", DEFAULT_ARGS),
    Workload("default validation", "edsr", DEFAULT_ARGS, batch=8, lr_size=48, train=False),  # srcore validate()
    Workload("default gan", "edsr", DEFAULT_ARGS, gan=True),
    Workload("srresnet preset", "srresnet", dict(num_feat=64, num_block=16, use_bn=True)),
    Workload("edsr-baseline preset", "edsr", dict(num_feat=64, num_block=16)),
    Workload("rrdb-psnr preset", "rrdb", dict(num_feat=64, num_block=23, num_grow_ch=32)),
    # A tile cut from a larger image reaches RRDBNet's first conv as a view off the 16-byte boundary.
    Workload("rrdb tile (sliced input, fp32)", "rrdb", dict(num_feat=64, num_block=23, num_grow_ch=32),
             batch=1, train=False, sliced=True, precision="fp32"),
)


def model_input(w: Workload, channels_last: bool) -> torch.Tensor:
    """(batch, 3, lr, lr) in [0, 1]; a view one pixel into a larger image when w.sliced."""
    size = w.lr_size + (1 if w.sliced else 0)
    x = torch.rand(w.batch, 3, size, size)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    return x[:, :, 1:, 1:] if w.sliced else x


def autocast(precision: str) -> contextlib.AbstractContextManager:
    """CPU autocast to the precision's dtype, as training runs on CUDA (our ops read the CPU autocast state
    for CPU tensors exactly as they read CUDA's for CUDA tensors); a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=PRECISIONS[precision])


def run_model(w: Workload, precision: str, channels_last: bool, max_blocks: int | None = None) -> None:
    """Forward (and backward when w.train) of w's generator built with kernels="triton"; with max_blocks,
    at most that many of its (identical) residual blocks, which launch the same variants as all of them."""
    torch.manual_seed(0)
    precision = w.precision or precision
    args = dict(w.generator_args)
    if max_blocks is not None and "num_block" in args:
        args["num_block"] = min(args["num_block"], max_blocks)
    model = build_generator(w.generator, scale=w.scale, kernels="triton", **args)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x = model_input(w, channels_last)
    with torch.set_grad_enabled(w.train), autocast(precision):
        out = model(x)
        loss = out.float().abs().mean()
        if w.gan:
            dtype = PRECISIONS[precision]
            real, fake = (torch.randn(w.batch, 1, dtype=dtype, requires_grad=True) for _ in range(2))
            loss = loss + ragan_loss.ragan_loss(real, fake, "d") + ragan_loss.ragan_loss(real, fake, "g")
    if w.train:
        loss.backward()


def bench_cases(precision: str, channels_last: bool) -> dict[str, Callable[[], None]]:
    """The shapes `kernels.bench` times (fwd + bwd), by name."""
    dtype = PRECISIONS[precision]
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def conv(B, C, H, W):
        x, res = (torch.randn(B, C, H, W, dtype=dtype).contiguous(memory_format=fmt) for _ in range(2))
        weight, bias, prelu = torch.randn(C, C, 3, 3, dtype=dtype), torch.randn(C, dtype=dtype), torch.rand(C)
        leaves = [t.requires_grad_() for t in (x, weight, bias, prelu, res)]
        y = conv_block.conv3x3_act(x, weight, bias, act="prelu", prelu_weight=prelu, residual=res)
        torch.autograd.grad(y, leaves, torch.ones_like(y))

    def shuffle(B, C, H, W, r):
        x = torch.randn(B, C, H, W, dtype=dtype).contiguous(memory_format=fmt).requires_grad_()
        prelu = torch.full((C // r**2,), 0.25, dtype=dtype, requires_grad=True)
        y = pixel_shuffle.pixel_shuffle_act(x, r, act="prelu", prelu_weight=prelu)
        torch.autograd.grad(y, [x, prelu], torch.ones_like(y))

    def loss(n):
        real, fake = (torch.randn(n, 1, dtype=dtype, requires_grad=True) for _ in range(2))
        torch.autograd.grad(ragan_loss.ragan_loss(real, fake, "d"), [real, fake])

    return {"bench conv 16x64x48x48": lambda: conv(16, 64, 48, 48),
            "bench conv 16x64x128x128": lambda: conv(16, 64, 128, 128),
            "bench shuffle 16x256x48x48 r=2": lambda: shuffle(16, 256, 48, 48, 2),
            "bench loss 2x65536": lambda: loss(1 << 16)}


def all_runs(precision: str, channels_last: bool, max_blocks: int | None = None) -> dict[str, Callable[[], None]]:
    """Every workload of one precision and layout: name -> a call that runs it."""
    runs = {w.name: (lambda w=w: run_model(w, precision, channels_last, max_blocks)) for w in MODELS}
    return runs | bench_cases(precision, channels_last)


def launch_counts() -> dict[str, dict[str, dict[str, list[str]]]]:
    """Kernel launches per call, forward and backward, as a bf16-autocast training step makes them at
    16x64x48x48 channels_last (fp32 parameters, bf16 activations): {case: {"fwd"|"bwd": {"triton": [...],
    "torch": [...]}}}. The forward is counted twice: a new weight version, then the same one again."""
    from kernels.capture import count_launches  # needs compiled kernels; the rest of this module does not

    torch.manual_seed(0)
    act = lambda t: t.to(torch.bfloat16).contiguous(memory_format=torch.channels_last).requires_grad_()  # noqa: E731
    x, res, up = act(torch.randn(16, 64, 48, 48)), act(torch.randn(16, 64, 48, 48)), act(torch.randn(16, 256, 48, 48))
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)
    prelu, prelu_up = torch.nn.PReLU(64), torch.nn.PReLU(64)
    real, fake = (torch.randn(16, 1, dtype=torch.bfloat16, requires_grad=True) for _ in range(2))
    cases = {
        "conv3x3_act prelu+residual": lambda: conv_block.conv3x3_act(
            x, conv.weight, conv.bias, act="prelu", prelu_weight=prelu.weight, residual=res),
        "conv3x3_act relu": lambda: conv_block.conv3x3_act(x, conv.weight, conv.bias, act="relu"),
        "conv3x3_act identity+residual*scale": lambda: conv_block.conv3x3_act(
            x, conv.weight, conv.bias, residual=res, scale=0.1),
        "pixel_shuffle_act prelu": lambda: pixel_shuffle.pixel_shuffle_act(up, 2, act="prelu",
                                                                           prelu_weight=prelu_up.weight),
        "ragan_loss": lambda: ragan_loss.ragan_loss(real, fake, "d"),
    }
    counts = {}
    for name, call in cases.items():
        with torch.no_grad():
            conv.weight.add_(0.0)  # a new weight version, as after an optimizer step
        with torch.autocast("cpu", dtype=torch.bfloat16):
            with count_launches() as first:
                out = call()
            with count_launches() as again:
                call()
        leaves = [t for t in (x, res, up, conv.weight, conv.bias, prelu.weight, prelu_up.weight, real, fake)]
        grad = torch.ones_like(out)
        with count_launches() as backward:
            torch.autograd.grad(out, leaves, grad, allow_unused=True)
        counts[name] = {"fwd": first, "fwd, same weights": again, "bwd": backward}
    return counts
