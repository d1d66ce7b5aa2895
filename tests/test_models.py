"""Generators: every registered model at every scale on a tiny odd-sized input, plus rebuild, layout and sizes."""
import pytest
import torch

from kernels import reference
from srcore.models import GENERATORS, build_generator
from srcore.resize import imresize

# Tiny configs: a few thousand parameters, so the whole file runs in seconds on CPU.
TINY = {
    "srresnet": dict(num_feat=8, num_block=2),
    "edsr": dict(num_feat=8, num_block=2, res_scale=0.1),
    "rrdb": dict(num_feat=8, num_block=1, num_grow_ch=4),
    # The lineage's RGB variants here (their Y path has its own tests in test_lineage.py).
    "srcnn": dict(colour="rgb", sizes=(3, 1, 3), num_feat=8),
    "vdsr": dict(colour="rgb", num_feat=8, num_layers=3),
    "mdsr": dict(num_feat=8, num_block=1),
}
SCALES = (2, 3, 4)


def lr_input(seed: int = 0) -> torch.Tensor:
    """(1, 3, 7, 9) in [0, 1]: odd H and W, H != W."""
    return torch.rand(1, 3, 7, 9, generator=torch.Generator().manual_seed(seed))


def tiny(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_generator(name, **{**TINY[name], **kwargs})


def test_tiny_configs_cover_every_generator():
    assert set(TINY) == set(GENERATORS)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", list(GENERATORS))
def test_forward_backward(name: str, scale: int):
    model = tiny(name, scale=scale)
    assert model.name == name and isinstance(model, GENERATORS[name])
    out = model(lr_input())
    assert out.shape == (1, 3, 7 * scale, 9 * scale)
    assert torch.isfinite(out).all()
    # Random weights on the loss so no gradient can vanish by symmetry (e.g. a bias under a plain mean).
    (out * torch.randn_like(out)).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


def test_srresnet_without_bn():
    """MSRResNet variant: no BN anywhere, PReLU and skips fused into the convs; conv biases come back."""
    model = tiny("srresnet", use_bn=False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert model.body[0].conv1.bias is not None
    out = model(lr_input())
    assert out.shape == (1, 3, 28, 36) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(GENERATORS))
def test_global_residual(name: str):
    """With conv_last zeroed the net adds nothing: the output is bicubic(LR) with global_residual, else the
    constant baseline (0, or EDSR's MeanShift mean)."""
    x = lr_input()
    for global_residual in (True, False):
        model = tiny(name, scale=3, global_residual=global_residual).eval()
        with torch.no_grad():
            model.conv_last.weight.zero_()
            model.conv_last.bias.zero_()
            out = model(x)
        if global_residual:
            expected = imresize(x, scale=3)
        else:
            mean = getattr(model, "out_mean", None)  # EDSR and MDSR add their MeanShift mean back
            expected = torch.zeros_like(out) if mean is None else mean.expand_as(out)
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_bad_name_lists_valid_names():
    with pytest.raises(ValueError, match="'fsrcnn'.*srresnet, edsr, rrdb, srcnn, vdsr, mdsr"):
        build_generator("fsrcnn")


@pytest.mark.parametrize("name", list(GENERATORS))
def test_bad_scale_and_kernels(name: str):
    with pytest.raises(ValueError, match=r"scale must be one of 2, 3, 4, got 8"):
        build_generator(name, scale=8)
    with pytest.raises(ValueError, match=r"'torch' or 'triton'.*got 'auto'"):
        build_generator(name, kernels="auto")
    with pytest.raises(TypeError, match="num_blocks"):
        build_generator(name, num_blocks=2)


@pytest.mark.parametrize("name", list(GENERATORS))
def test_rebuild_from_arch_args(name: str):
    """A checkpoint's (name, arch_args, state_dict) is enough to rebuild the same model."""
    model = tiny(name, scale=2, global_residual=True).eval()
    assert "kernels" not in model.arch_args
    torch.manual_seed(1)  # different init, so equal outputs come from the loaded weights
    rebuilt = build_generator(model.name, **model.arch_args)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    rebuilt.eval()
    x = lr_input()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


@pytest.mark.parametrize("name", list(GENERATORS))
def test_channels_last_matches_nchw(name: str):
    model = tiny(name, scale=4).eval()
    x = lr_input()
    with torch.no_grad():
        torch.testing.assert_close(model(x.to(memory_format=torch.channels_last)), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, kwargs, published", [
    ("srresnet", dict(), 1.55e6),  # SRGAN's SRResNet, 16 blocks, 64 channels
    ("edsr", dict(scale=4), 1.52e6),  # EDSR-baseline x4 (MeanShift adds no parameters)
    ("rrdb", dict(), 16.7e6),  # ESRGAN, 23 RRDBs
])
def test_paper_sizes(name: str, kwargs: dict, published: float):
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = build_generator(name, **kwargs)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - published) / published < 0.005, count


def test_rrdb_state_dict_uses_basicsr_names():
    keys = set(tiny("rrdb", num_block=2, scale=4).state_dict())
    for key in ("conv_first.weight", "body.1.rdb3.conv5.bias", "body.0.rdb1.conv1.weight", "conv_body.weight",
                "conv_up1.weight", "conv_up2.weight", "conv_hr.weight", "conv_last.bias"):
        assert key in keys, key


@pytest.mark.parametrize("shape, channels", [((2, 4, 5, 7), 4), ((3, 6, 9, 2), 1), ((2, 3, 11), 3)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_prelu_matches_torch_values_and_gradients(shape, channels, channels_last):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0] = 0.0  # x == 0 takes the negative branch, as in torch
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.rand(channels) - 0.5
    grad = torch.randn(shape)
    outs = []
    for fn in (torch.nn.functional.prelu, reference.prelu):
        xi, wi = x.clone().requires_grad_(), weight.clone().requires_grad_()
        y = fn(xi, wi)
        y.backward(grad)
        outs.append((y, xi.grad, wi.grad))
    for ours, theirs in zip(outs[1], outs[0]):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert outs[1][1].stride() == outs[0][1].stride()


def test_prelu_under_bf16_autocast_keeps_dtypes_and_gradients():
    x = torch.randn(2, 4, 6, 6).requires_grad_()
    weight = torch.full((4,), 0.25, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = reference.prelu(x.bfloat16(), weight)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert weight.grad.dtype == torch.float32 and x.grad.dtype == torch.float32
    expected = torch.where(x.detach().bfloat16() > 0, 0.0, x.detach().bfloat16().float()).sum((0, 2, 3))
    torch.testing.assert_close(weight.grad, expected, rtol=1e-2, atol=1e-2)
