"""Fused conv block against the float64 reference: every output and gradient, odd shapes, both layouts.

On CPU the kernels run under the Triton interpreter (tests/conftest.py), where an fp32 tl.dot is exact IEEE,
so fp32 tolerances are tight; the `ieee_fp32` fixture disables TF32 so they hold on a GPU too, and
`test_tf32_on_gpu` checks that the TF32 path is really taken when enabled.
"""
import os
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import conv_block, reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
# Max abs error allowed, relative to the reference's largest magnitude (rtol the same): fp32 sees only
# summation order; fp16/bf16 see the rounding of z, dz and the outputs (bf16: 8 mantissa bits, and the
# interpreter casts fp32 -> bf16 by truncation where a GPU rounds to nearest).
TOL = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}
ACTS = reference.ACTIVATIONS



def dtype_id(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def assert_close(actual, expected, dtype, what, tol=None):
    tol = TOL[dtype] if tol is None else tol
    atol = tol * max(expected.abs().max().item(), 1e-6)
    torch.testing.assert_close(actual.double(), expected, rtol=tol, atol=atol, msg=lambda m: f"{what}: {m}")


def make_inputs(B, c_in, c_out, H, W, *, dtype=torch.float32, act="prelu", residual=True, shared_prelu=False,
                bias=True, channels_last=False, seed=0):
    """Random conv-block arguments, each leaf requiring grad; weights scaled like Kaiming so z ~ N(0, 1)."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(DEVICE, dtype)

    x = rand(B, c_in, H, W)
    args = dict(x=x.to(memory_format=torch.channels_last) if channels_last else x,
                weight=rand(c_out, c_in, 3, 3, scale=(9 * c_in) ** -0.5),
                bias=rand(c_out) if bias else None,
                prelu_weight=torch.rand(1 if shared_prelu else c_out, generator=gen).to(DEVICE)
                if act == "prelu" else None,
                residual=rand(B, c_out, H, W) if residual else None)
    for t in args.values():
        if t is not None:
            t.requires_grad_()
    return args


def check_against_reference(args, *, act, scale=1.0, negative_slope=0.2, grad_seed=1):
    """Run kernel and float64 reference on the same values; compare y and every input's gradient."""
    names = [n for n, t in args.items() if t is not None]
    y = conv_block.conv3x3_act(**args, act=act, scale=scale, negative_slope=negative_slope)
    dtype = args["x"].dtype
    y_dtype = dtype if args["residual"] is None else torch.promote_types(dtype, args["residual"].dtype)
    assert y.dtype == y_dtype and y.is_contiguous(memory_format=conv_block.memory_format(args["x"]))
    ref_args = {n: (t.detach().double().requires_grad_() if t is not None else None) for n, t in args.items()}
    y_ref = reference.conv3x3_act(**ref_args, act=act, scale=scale, negative_slope=negative_slope)
    assert_close(y, y_ref, dtype, "y")
    gen = torch.Generator().manual_seed(grad_seed)
    dy = torch.randn(y.shape, generator=gen).to(DEVICE, y_dtype)
    grads = torch.autograd.grad(y, [args[n] for n in names], dy)
    grads_ref = torch.autograd.grad(y_ref, [ref_args[n] for n in names], dy.double())
    for name, g, g_ref in zip(names, grads, grads_ref):
        assert g.dtype == args[name].dtype and g.shape == args[name].shape, name
        assert_close(g, g_ref, dtype, f"d{name}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=dtype_id)
@pytest.mark.parametrize("act", ACTS)
def test_every_act_and_dtype(act, dtype):
    args = make_inputs(2, 17, 20, 7, 13, dtype=dtype, act=act)
    check_against_reference(args, act=act, scale=0.3, negative_slope=0.1)


@pytest.mark.parametrize("residual, scale", [(False, 1.0), (True, 1.0), (False, 0.5)])
@pytest.mark.parametrize("act", ["relu", "prelu"])
def test_residual_and_scale(act, residual, scale):
    check_against_reference(make_inputs(1, 5, 6, 9, 4, act=act, residual=residual), act=act, scale=scale)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
def test_channels_last_and_shared_prelu(dtype):
    """channels_last x, NCHW residual, one PReLU weight for all channels, no bias."""
    args = make_inputs(3, 16, 17, 6, 5, dtype=dtype, channels_last=True, shared_prelu=True, bias=False)
    check_against_reference(args, act="prelu", scale=0.2)


@pytest.mark.parametrize("B, c_in, c_out, H, W", [
    (1, 3, 64, 7, 13),    # conv_first: 3 input channels
    (3, 64, 3, 5, 9),     # conv_last: 3 output channels
    (2, 64, 64, 16, 16),  # the usual 64 features; several dW splits
    (1, 17, 17, 1, 1),    # every tap but the centre is padding
    (1, 80, 72, 5, 7),    # several Cin chunks and Cout tiles (RRDB's dense convs see up to 192 channels)
])
def test_odd_shapes(B, c_in, c_out, H, W):
    args = make_inputs(B, c_in, c_out, H, W, act="leaky_relu")
    check_against_reference(args, act="leaky_relu", scale=0.5)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(B=st.integers(1, 3), c_in=st.integers(1, 20), c_out=st.integers(1, 20), H=st.integers(1, 11),
       W=st.integers(1, 11), act=st.sampled_from(ACTS), residual=st.booleans(), channels_last=st.booleans(),
       scale=st.sampled_from([1.0, 0.2]), seed=st.integers(0, 2**16))
def test_shape_sweep(B, c_in, c_out, H, W, act, residual, channels_last, scale, seed):
    args = make_inputs(B, c_in, c_out, H, W, act=act, residual=residual, channels_last=channels_last, seed=seed)
    check_against_reference(args, act=act, scale=scale)


def test_residual_dtype_promotes_output():
    """bf16 conv + fp32 residual -> fp32 y (as the reference's residual + y); the residual's grad stays fp32."""
    args = make_inputs(2, 8, 8, 5, 6, dtype=torch.bfloat16, act="relu")
    args["residual"] = args["residual"].detach().float().requires_grad_()
    y = conv_block.conv3x3_act(**args, act="relu")
    assert y.dtype == torch.float32
    check_against_reference(args, act="relu")


def test_autocast_casts_like_conv2d():
    """Under autocast, fp32 x, W, b run as bf16 (autocast's conv2d rule): compare with the float64 reference
    on bf16-rounded copies; gradients reach the fp32 leaves in fp32."""
    args = make_inputs(2, 8, 12, 5, 6, act="prelu")
    with torch.autocast(torch.device(DEVICE).type, dtype=torch.bfloat16):
        y = conv_block.conv3x3_act(**args, act="prelu", scale=0.5)
    assert y.dtype == torch.float32  # bf16 conv + fp32 residual
    rounded = {n: t.detach().to(torch.bfloat16).double() if n in ("x", "weight", "bias") else t.detach().double()
               for n, t in args.items()}
    for t in rounded.values():
        t.requires_grad_()
    y_ref = reference.conv3x3_act(**rounded, act="prelu", scale=0.5)
    assert_close(y, y_ref, torch.bfloat16, "y")
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    grads = torch.autograd.grad(y, list(args.values()), dy)
    grads_ref = torch.autograd.grad(y_ref, list(rounded.values()), dy.double())
    for name, g, g_ref in zip(args, grads, grads_ref):
        assert g.dtype == torch.float32, name
        assert_close(g, g_ref, torch.bfloat16, f"d{name}")


def test_grad_through_sum_and_partial_requires_grad():
    """A broadcast (stride-0) output grad from .sum(), and only the weight requiring grad."""
    args = make_inputs(2, 4, 5, 6, 7, act="relu", residual=False)
    args["x"].requires_grad_(False)
    args["bias"].requires_grad_(False)
    conv_block.conv3x3_act(**args, act="relu").sum().backward()
    ref = {n: t.detach().double() for n, t in args.items() if t is not None}
    ref["weight"].requires_grad_()
    reference.conv3x3_act(**ref, act="relu").sum().backward()
    assert args["x"].grad is None and args["bias"].grad is None
    assert_close(args["weight"].grad, ref["weight"].grad, torch.float32, "dweight")


def test_no_grad_matches_grad_path():
    args = make_inputs(1, 8, 8, 5, 5, act="prelu")
    with torch.no_grad():
        y = conv_block.conv3x3_act(**args, act="prelu")
    assert y.grad_fn is None
    torch.testing.assert_close(y, conv_block.conv3x3_act(**args, act="prelu"), rtol=0, atol=0)


@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
@pytest.mark.parametrize("residual, scale", [(False, 1.0), (False, 0.5), (True, 0.2)])
def test_reference_in_place_activation_matches_plain_composition(act, residual, scale):
    """The reference's in-place activation and one-pass residual add give the values and gradients of
    residual + scale * act(conv(x) + bias) written out of place, the residual's included."""
    args = make_inputs(2, 5, 4, 7, 6, act=act, residual=residual)
    leaves = {n: t.detach().double().requires_grad_() for n, t in args.items() if t is not None}
    y = reference.conv3x3_act(**leaves, act=act, scale=scale)
    plain = {n: t.detach().clone().requires_grad_() for n, t in leaves.items()}
    z = torch.nn.functional.conv2d(plain["x"], plain["weight"], plain["bias"], padding=1)
    z = torch.relu(z) if act == "relu" else torch.nn.functional.leaky_relu(z, 0.2)
    z = scale * z + (plain["residual"] if residual else 0)
    torch.testing.assert_close(y, z, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(y)
    y.backward(grad)
    z.backward(grad)
    for name in leaves:
        torch.testing.assert_close(leaves[name].grad, plain[name].grad, rtol=1e-12, atol=1e-12, msg=name)


@pytest.mark.parametrize("change, message", [
    (dict(act="gelu"), "unknown activation 'gelu'"),
    (dict(weight=torch.zeros(4, 3, 5, 5)), r"weight must be \(Cout, 3, 3, 3\)"),
    (dict(x=torch.zeros(3, 8, 8)), r"x must be \(B, Cin, H, W\)"),
    (dict(x=torch.zeros(1, 3, 8, 8, dtype=torch.float64)), "x dtype torch.float64 not supported"),
    (dict(weight=torch.zeros(4, 3, 3, 3, dtype=torch.float16)), "weight dtype torch.float16 differs"),
    (dict(bias=torch.zeros(5)), r"bias must have shape \(4,\)"),
    (dict(residual=torch.zeros(1, 4, 8, 9)), r"residual must have shape \(1, 4, 8, 8\)"),
    (dict(act="prelu"), "act='prelu' needs prelu_weight"),
    (dict(act="prelu", prelu_weight=torch.ones(3)), "prelu_weight must hold 1 or Cout=4 values"),
])
def test_bad_inputs_name_the_argument(change, message):
    args = dict(x=torch.zeros(1, 3, 8, 8), weight=torch.zeros(4, 3, 3, 3), bias=torch.zeros(4), act="identity")
    args = {n: (v.to(DEVICE) if isinstance(v, torch.Tensor) else v) for n, v in {**args, **change}.items()}
    with pytest.raises(ValueError, match=message):
        conv_block.conv3x3_act(args.pop("x"), args.pop("weight"), args.pop("bias"), **args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU tensors without the interpreter")
def test_cpu_tensors_without_interpreter_say_how_to_run():
    """Without TRITON_INTERPRET the kernels compile for CUDA only: CPU inputs get a clear error, not a crash."""
    code = ("import torch; from kernels import conv_block\n"
            "try:\n    conv_block.conv3x3_act(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3), None)\n"
            "except ValueError as e:\n    print(e)")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "need CUDA tensors, or TRITON_INTERPRET=1" in out


@gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
def test_paper_shape_on_gpu(dtype):
    """16x64x48x48, compiled, channels_last: the shape the benchmark times."""
    args = make_inputs(16, 64, 64, 48, 48, dtype=dtype, channels_last=True)
    check_against_reference(args, act="prelu", scale=0.2)


@gpu
@needs_cuda
def test_tf32_on_gpu():
    """With TF32 on (cudnn.conv.fp32_precision, as PyTorch's conv reads it) fp32 tiles run as TF32: the result
    differs from IEEE's and errs like TF32 (~1e-3, not < 1e-5); this fails if TF32 is not really used."""
    from kernels.gpu_check import tf32_in_use
    result = tf32_in_use()
    assert result["ok"], result
