"""The checks of `make gpu-check` (`kernels.gpu_check`), each a function of a device and sizes.

On a CUDA device they run compiled at the sizes gpu_check gives; the tests run the same functions on CPU
under the interpreter at tiny sizes, so the script's logic is tested where there is no GPU. Each returns
a dict with "ok" (bool) and the figures it judged by.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels import conv_block, pixel_shuffle, ragan_loss, reference
from srcore.resize import imresize


def conv_args(shape: tuple[int, int, int, int], dtype: torch.dtype, device: str, seed: int = 0,
              channels_last: bool = True) -> dict[str, torch.Tensor]:
    """Arguments of a C -> C conv block with PReLU and residual, each a leaf requiring grad."""
    B, C, H, W = shape
    gen = torch.Generator().manual_seed(seed)
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def rand(*size, scale=1.0):
        return (torch.randn(*size, generator=gen) * scale).to(device, dtype)

    args = dict(x=rand(B, C, H, W).contiguous(memory_format=fmt), weight=rand(C, C, 3, 3, scale=(9 * C) ** -0.5),
                bias=rand(C), prelu_weight=rand(C, scale=0.25), residual=rand(B, C, H, W).contiguous(memory_format=fmt))
    return {n: t.requires_grad_() for n, t in args.items()}


def conv_grads(args: dict[str, torch.Tensor], op=conv_block.conv3x3_act) -> list[torch.Tensor]:
    """[y, and the gradient of every argument] under a fixed upstream gradient."""
    y = op(**args, act="prelu")
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(y.device, y.dtype)
    return [y.detach(), *torch.autograd.grad(y, list(args.values()), dy)]


def determinism(device: str, shape=(16, 64, 48, 48)) -> dict:
    """Two forward + backward runs of the conv block, pixel shuffle and loss give identical bits."""
    runs = {}
    for dtype in (torch.bfloat16, torch.float32):
        runs[f"conv3x3_act {dtype}"] = lambda dtype=dtype: conv_grads(conv_args(shape, dtype, device))
    x = torch.randn(shape[0], shape[1] * 4, *shape[2:], generator=torch.Generator().manual_seed(2)).to(device)

    def shuffle():
        leaf, alpha = x.clone().requires_grad_(), torch.full((shape[1],), 0.25, device=device, requires_grad=True)
        y = pixel_shuffle.pixel_shuffle_act(leaf, 2, act="prelu", prelu_weight=alpha)
        return [y.detach(), *torch.autograd.grad(y, [leaf, alpha], torch.ones_like(y))]

    def loss():
        real, fake = (x.flatten()[i::2][:4096].clone().requires_grad_() for i in range(2))
        out = ragan_loss.ragan_loss(real, fake, "d")
        return [out.detach(), *torch.autograd.grad(out, [real, fake])]

    runs |= {"pixel_shuffle_act": shuffle, "ragan_loss": loss}
    same = {name: all(torch.equal(a, b) for a, b in zip(run(), run())) for name, run in runs.items()}
    return dict(ok=all(same.values()), bitwise_equal=same)


def large_input(device: str, shape=(2, 64, 4096, 4100), crop: int = 64) -> dict:
    """A bf16 channels_last input of more than 2**31 elements in all (each image below it): the last
    crop x crop corner of the last image against F.conv2d on the same crop."""
    B, C, H, W = shape
    torch.manual_seed(0)
    x = torch.empty(shape, device=device, dtype=torch.bfloat16, memory_format=torch.channels_last).normal_()
    weight = (torch.randn(C, C, 3, 3, device=device) * (9 * C) ** -0.5).to(torch.bfloat16)
    bias = torch.randn(C, device=device).to(torch.bfloat16)
    with torch.no_grad():
        y = conv_block.conv3x3_act(x, weight, bias)
        window = x[B - 1:, :, H - crop - 1:, W - crop - 1:].float()  # one row/column of context above/left
        expected = F.conv2d(window, weight.float(), bias.float(), padding=1)[..., 1:, 1:]
    got = y[B - 1:, :, H - crop:, W - crop:].float()
    error = ((got - expected).abs().max() / expected.abs().max()).item()
    return dict(ok=error < 2e-2, elements=x.numel(), over_2_31=x.numel() > 2**31, max_rel_error=error)


def nan_through_activations(device: str, shape=(2, 8, 6, 5)) -> dict:
    """NaN and +-Inf in x: y and every gradient have NaN exactly where the reference's have, and equal
    values elsewhere, for every activation, in the conv block and in pixel shuffle."""
    B, C, H, W = shape
    results = {}
    for act in reference.ACTIVATIONS:
        conv = conv_args(shape, torch.float32, device, channels_last=False)
        up = dict(x=torch.randn(B, 4 * C, H, W, generator=torch.Generator().manual_seed(4)).to(device),
                  prelu_weight=torch.full((C,), 0.25, device=device))
        for args in (conv, up):
            if act != "prelu":
                del args["prelu_weight"]
            with torch.no_grad():  # NaN, +Inf, -Inf at three places
                x = args["x"]
                x[0, 0, 1, 1], x[0, 1, 3, 2], x[-1, -1, -1, -1] = float("nan"), float("inf"), -float("inf")
            for t in args.values():
                t.requires_grad_()
        results[f"conv3x3_act {act}"] = nan_pattern_matches(conv_block.conv3x3_act, reference.conv3x3_act, conv,
                                                            act=act)
        results[f"pixel_shuffle_act {act}"] = nan_pattern_matches(
            pixel_shuffle.pixel_shuffle_act, reference.pixel_shuffle_act, up, act=act, upscale=2)
    return dict(ok=all(results.values()), matches=results)


def nan_pattern_matches(op, ref, args: dict[str, torch.Tensor], **kwargs) -> bool:
    """op(**args, **kwargs) and ref on float64 copies give NaN at the same places and close values elsewhere
    (equal infinities included), in the output and every argument's gradient."""
    ref_args = {n: t.detach().double().requires_grad_() for n, t in args.items()}
    outs = []
    for fn, a in ((op, args), (ref, ref_args)):
        y = fn(**a, **kwargs)
        dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(3)).to(y.device, y.dtype)
        outs.append([y.detach(), *torch.autograd.grad(y, list(a.values()), dy)])
    for got, want in zip(*outs):
        got, want = got.double(), want.double()
        if not torch.equal(got.isnan(), want.isnan()):
            return False
        finite = want.isfinite()
        scale = want[finite].abs().max().item() if finite.any() else 1.0
        if not torch.allclose(got[~want.isnan()], want[~want.isnan()], rtol=1e-4, atol=1e-4 * max(scale, 1.0)):
            return False
    return True


def training_curves(device: str, params: dict, steps: int = 100, batch: int = 16, lr_size: int = 24,
                    generator_args: dict | None = None) -> dict:
    """`steps` steps of the pipeline's own pretrain recipe (srcore.recipes.pretrain: params.yaml's settings and
    runtime, bf16 autocast and channels_last) with kernels="triton" and with kernels="torch", from the same
    weights on the same batches (HR random, LR by MATLAB bicubic): the two loss curves, and their largest
    relative gap. generator_args: instead of params.yaml's (tests use a tiny generator)."""
    from dataclasses import replace

    from srcore.config import params_group
    from srcore.recipes import pretrain
    from srcore.settings import CommonSettings, PretrainSettings, Runtime

    common = replace(params_group(params, CommonSettings, "common"), scale=4)
    settings = params_group(params, PretrainSettings, "pretrain")
    settings = replace(settings, batch_size=batch, generator_args=generator_args or settings.generator_args)
    runtime = replace(params_group(params, Runtime, "runtime"), device=device, precision="bf16", channels_last=True)
    curves = {}
    for kernels in ("triton", "torch"):
        torch.manual_seed(0)
        recipe = pretrain.build(settings, common, replace(runtime, kernels=kernels), data={}, kernels=kernels,
                                code="gpu-check")
        data = torch.Generator().manual_seed(1)
        losses = []
        for _ in range(steps):
            hr = torch.rand(batch, 3, lr_size * 4, lr_size * 4, generator=data).to(device)
            lq = imresize(hr, scale=1 / 4).contiguous(memory_format=torch.channels_last)
            losses.append(recipe.step(recipe.state, lq, hr.contiguous(memory_format=torch.channels_last))["train/loss"])
        curves[kernels] = losses
    gaps = [abs(a - b) / b for a, b in zip(curves["triton"], curves["torch"])]
    return dict(ok=max(gaps) < 0.05, max_rel_gap=max(gaps), mean_rel_gap=sum(gaps) / len(gaps), curves=curves)
