"""Generators built with kernels="triton" match the same weights with kernels="torch": output and every grad.

Tiny models (16 features, 2 blocks, a 1x3x8x8 input) so the interpreted kernels stay cheap on CPU; each
config exercises different fusions: PReLU + skip (MSRResNet), BN between plain convs (SRResNet), ReLU and
residual scaling with an r=3 shuffle (EDSR), leaky ReLU with scaled dense residuals (RRDBNet). Under bf16
autocast, as training runs, both backends must stay as close to the fp32 result.
"""
import pytest
import torch

from srcore.models import build_generator

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
CONFIGS = {  # id: (generator, its arguments, channels_last input)
    "msrresnet-x4": ("srresnet", dict(scale=4, use_bn=False), False),
    "msrresnet-x2-channels_last": ("srresnet", dict(scale=2, use_bn=False), True),
    "srresnet-x2": ("srresnet", dict(scale=2, use_bn=True), False),
    "edsr-x3": ("edsr", dict(scale=3, res_scale=0.1), False),
    "rrdb-x2": ("rrdb", dict(scale=2, num_grow_ch=8), False),
}
TOL = 1e-4  # fp32 both ways; only summation order differs, compounded over ~10-30 layers
# Relative L2 distance from fp32 under bf16 autocast. The torch backend's worst here is ~4%; the interpreter
# casts fp32 -> bf16 by truncation (the GPU rounds to nearest), which roughly doubles the kernels' error on CPU.
AUTOCAST_TOL = 5e-2



def run(model: torch.nn.Module, x: torch.Tensor, dy_seed: int = 1) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Output and parameter gradients under a random upstream gradient (no cancellation by symmetry)."""
    out = model(x)
    dy = torch.randn(out.shape, generator=torch.Generator().manual_seed(dy_seed)).to(out.device, out.dtype)
    out.backward(dy)
    return out.detach(), {n: p.grad for n, p in model.named_parameters()}


def twin_generators(name: str, kwargs: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(kernels="triton", kernels="torch") generators holding the same weights."""
    torch.manual_seed(0)
    reference = build_generator(name, num_feat=16, num_block=2, kernels="torch", **kwargs).to(DEVICE)
    model = build_generator(name, num_feat=16, num_block=2, kernels="triton", **kwargs).to(DEVICE)
    model.load_state_dict(reference.state_dict())
    return model, reference


def assert_runs_match(config: str, model, reference, x) -> None:
    out, grads = run(model, x)
    out_ref, grads_ref = run(reference, x)
    scale = out_ref.abs().max().item()
    torch.testing.assert_close(out, out_ref, rtol=TOL, atol=TOL * scale, msg=lambda m: f"{config} output: {m}")
    assert grads.keys() == grads_ref.keys()
    for pname, g_ref in grads_ref.items():
        assert grads[pname] is not None, pname
        atol = TOL * max(g_ref.abs().max().item(), 1e-8)
        torch.testing.assert_close(grads[pname], g_ref, rtol=TOL, atol=atol, msg=lambda m: f"{config} d{pname}: {m}")


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b).norm() / b.norm()).item()


def lr_input(channels_last: bool = False) -> torch.Tensor:
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    return x.to(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("config", list(CONFIGS))
def test_triton_generator_matches_torch(config):
    name, kwargs, channels_last = CONFIGS[config]
    model, reference = twin_generators(name, kwargs)
    assert_runs_match(config, model, reference, lr_input(channels_last))


@pytest.mark.parametrize("config", ["msrresnet-x2-channels_last", "edsr-x3"])
def test_triton_generator_under_autocast(config):
    """bf16 autocast, as training runs: the same output dtype as the torch backend, and output and every
    gradient within AUTOCAST_TOL (relative L2) of the fp32 run, a bound the torch backend meets too."""
    name, kwargs, channels_last = CONFIGS[config]
    model, reference = twin_generators(name, kwargs)
    x = lr_input(channels_last)
    out_fp32, grads_fp32 = run(reference, x)  # equal to the triton model's fp32 run (test above)
    results = {}
    for backend, net in (("triton", model), ("torch", reference)):
        net.zero_grad(set_to_none=True)
        with torch.autocast(torch.device(DEVICE).type, dtype=torch.bfloat16):
            results[backend] = run(net, x)
    assert results["triton"][0].dtype == results["torch"][0].dtype
    pairs = {"output": (results["triton"][0], results["torch"][0], out_fp32)}
    pairs |= {f"d{n}": (results["triton"][1][n], results["torch"][1][n], g) for n, g in grads_fp32.items()}
    for what, (ours, theirs, fp32) in pairs.items():
        err, err_torch = relative_error(ours, fp32), relative_error(theirs, fp32)
        assert err < AUTOCAST_TOL, f"{config} {what}: {err:.3g} from fp32 (torch backend: {err_torch:.3g})"
