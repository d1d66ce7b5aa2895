"""Pixel shuffle + activation against the float64 reference: output and gradients, r = 2 and 3, both layouts."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import pixel_shuffle, reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# Relative to the reference's largest magnitude. Outputs are copies up to the activation's one rounding;
# the PReLU weight's grad sums many products in fp32.
TOL = {torch.float32: 1e-6, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def dtype_id(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def assert_close(actual, expected, dtype, what):
    tol = TOL[dtype]
    atol = tol * max(expected.abs().max().item(), 1e-6)
    torch.testing.assert_close(actual.double(), expected, rtol=tol, atol=atol, msg=lambda m: f"{what}: {m}")


def check_against_reference(B, C, H, W, r, *, act, dtype=torch.float32, channels_last=False, shared_prelu=False,
                            seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C * r * r, H, W, generator=gen).to(DEVICE, dtype)
    x = x.to(memory_format=torch.channels_last) if channels_last else x
    prelu = torch.rand(1 if shared_prelu else C, generator=gen).to(DEVICE) if act == "prelu" else None
    leaves = [t.requires_grad_() for t in (x, prelu) if t is not None]
    y = pixel_shuffle.pixel_shuffle_act(x, r, act=act, prelu_weight=prelu, negative_slope=0.1)
    assert y.shape == (B, C, H * r, W * r) and y.dtype == dtype
    assert y.is_contiguous(memory_format=pixel_shuffle.memory_format(x))  # ambiguous layouts count as NCHW
    ref_leaves = [t.detach().double().requires_grad_() for t in leaves]
    y_ref = reference.pixel_shuffle_act(ref_leaves[0], r, act=act, negative_slope=0.1,
                                        prelu_weight=ref_leaves[1] if act == "prelu" else None)
    assert_close(y, y_ref, dtype, "y")
    dy = torch.randn(y.shape, generator=gen).to(DEVICE, dtype)
    grads = torch.autograd.grad(y, leaves, dy)
    grads_ref = torch.autograd.grad(y_ref, ref_leaves, dy.double())
    for name, g, g_ref, leaf in zip(("dx", "dprelu"), grads, grads_ref, leaves):
        assert g.dtype == leaf.dtype and g.shape == leaf.shape, name
        assert_close(g, g_ref, dtype, name)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("act", reference.ACTIVATIONS)
@pytest.mark.parametrize("r", [2, 3])
def test_every_act_dtype_and_factor(r, act, dtype):
    check_against_reference(2, 5, 7, 13, r, act=act, dtype=dtype)


@pytest.mark.parametrize("r", [2, 3])
def test_channels_last_and_shared_prelu(r):
    check_against_reference(3, 17, 5, 6, r, act="prelu", channels_last=True, shared_prelu=True)


def test_upsampler_shape():
    """SRGAN's upsampler at 64 features: (B, 256, H, W) -> (B, 64, 2H, 2W), several channel tiles."""
    check_against_reference(1, 64, 6, 5, 2, act="prelu", dtype=torch.bfloat16)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(B=st.integers(1, 3), C=st.integers(1, 70), H=st.integers(1, 9), W=st.integers(1, 9),
       r=st.sampled_from([2, 3]), act=st.sampled_from(reference.ACTIVATIONS),
       channels_last=st.booleans(), seed=st.integers(0, 2**16))
def test_shape_sweep(B, C, H, W, r, act, channels_last, seed):
    check_against_reference(B, C, H, W, r, act=act, channels_last=channels_last, seed=seed)


def test_autocast_prelu_runs_in_autocast_dtype():
    """autocast's prelu casts fp32 input to bf16, so the reference's output is bf16; the kernel's too."""
    x = torch.randn(1, 12, 3, 4, device=DEVICE, requires_grad=True)
    prelu = torch.rand(3, device=DEVICE, requires_grad=True)
    with torch.autocast(torch.device(DEVICE).type, dtype=torch.bfloat16):
        y = pixel_shuffle.pixel_shuffle_act(x, 2, act="prelu", prelu_weight=prelu)
    assert y.dtype == torch.bfloat16
    x_ref = x.detach().to(torch.bfloat16).double()
    assert_close(y, reference.pixel_shuffle_act(x_ref, 2, act="prelu", prelu_weight=prelu.double()),
                 torch.bfloat16, "y")
    y.float().sum().backward()
    assert x.grad.dtype == torch.float32 and prelu.grad.dtype == torch.float32


def test_no_grad_path():
    x = torch.randn(1, 8, 3, 3, device=DEVICE)
    with torch.no_grad():
        y = pixel_shuffle.pixel_shuffle_act(x, 2, act="relu")
    assert y.grad_fn is None
    torch.testing.assert_close(y, reference.pixel_shuffle_act(x, 2, act="relu"), rtol=0, atol=0)


@pytest.mark.parametrize("x_shape, kwargs, message", [
    ((1, 8, 4, 4), dict(upscale=2, act="swish"), "unknown activation 'swish'"),
    ((1, 8, 4, 4), dict(upscale=0), "upscale must be a positive int, got 0"),
    ((1, 8, 4, 4), dict(upscale=2.0), "upscale must be a positive int, got 2.0"),
    ((1, 10, 4, 4), dict(upscale=2), r"x must be \(B, C\*2\*2, H, W\), got \(1, 10, 4, 4\)"),
    ((1, 8, 4, 4), dict(upscale=2, act="prelu"), "act='prelu' needs prelu_weight"),
    ((1, 8, 4, 4), dict(upscale=2, act="prelu", prelu_weight=torch.ones(8)), "1 or C=2 values"),
])
def test_bad_inputs_name_the_argument(x_shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pixel_shuffle.pixel_shuffle_act(torch.zeros(x_shape, device=DEVICE), kwargs.pop("upscale"), **kwargs)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
def test_benchmark_shape_on_gpu(dtype):
    """The upsampler input the benchmark times, 16x256x48x48, r=2, compiled."""
    check_against_reference(16, 64, 48, 48, 2, act="prelu", dtype=dtype)
