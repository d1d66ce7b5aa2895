"""Fused RaGAN loss against the float64 reference: value and both gradients, both targets, all dtypes."""
import pytest
import torch

from kernels import ragan_loss, reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
# The loss is computed in fp32 and rounded once to the input dtype; gradients likewise.
TOL = {torch.float32: 1e-6, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def dtype_id(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def assert_close(actual, expected, dtype, what):
    tol = TOL[dtype]
    atol = tol * max(expected.abs().max().item(), 1e-6)
    torch.testing.assert_close(actual.double(), expected, rtol=tol, atol=atol, msg=lambda m: f"{what}: {m}")


def check_against_reference(real, fake, target, grad_scale=1.7):
    """Loss and both input gradients (through a non-unit upstream grad) against the float64 reference."""
    real, fake = real.to(DEVICE).requires_grad_(), fake.to(DEVICE).requires_grad_()
    loss = ragan_loss.ragan_loss(real, fake, target)
    assert loss.shape == () and loss.dtype == torch.promote_types(real.dtype, fake.dtype)
    real_ref, fake_ref = (t.detach().double().requires_grad_() for t in (real, fake))
    loss_ref = reference.ragan_loss(real_ref, fake_ref, target)
    assert_close(loss, loss_ref, real.dtype, "loss")
    grads = torch.autograd.grad(loss * grad_scale, (real, fake))
    grads_ref = torch.autograd.grad(loss_ref * grad_scale, (real_ref, fake_ref))
    for name, g, g_ref, leaf in zip(("d_real", "d_fake"), grads, grads_ref, (real, fake)):
        assert g.shape == leaf.shape and g.dtype == leaf.dtype, name
        assert_close(g, g_ref, real.dtype, name)


def logits(*shape, seed=0, scale=3.0, dtype=torch.float32):
    return (torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=dtype_id)
@pytest.mark.parametrize("target", ["d", "g"])
def test_batch_16(target, dtype):
    check_against_reference(logits(16, 1, dtype=dtype), logits(16, 1, seed=1, dtype=dtype), target)


@pytest.mark.parametrize("target", ["d", "g"])
@pytest.mark.parametrize("n_real, n_fake", [(1, 1), (7, 3), (5000, 3001)])
def test_sizes_and_shapes(target, n_real, n_fake):
    """Flat (B,) logits, different counts; 5000 spans several forward-loop steps and backward programs."""
    check_against_reference(logits(n_real), logits(n_fake, seed=1), target)


def test_patch_logits_and_strided_input():
    """A (B, 1, h, w) patch map, and a strided view: all elements are averaged, as in the reference."""
    check_against_reference(logits(2, 1, 5, 5), logits(6, 2, seed=1)[:, 1], "d")


@pytest.mark.parametrize("target", ["d", "g"])
def test_extreme_logits_stay_finite(target):
    """Saturated logits: the softplus/sigmoid forms must neither overflow nor lose the linear part."""
    check_against_reference(torch.tensor([100.0, -100.0, 50.0, 0.0]), torch.tensor([-80.0, 90.0, 0.0, 30.0]), target)


def test_autocast_gives_fp32_loss():
    """autocast runs BCE-with-logits in fp32, so the reference's loss is fp32 there even for bf16 logits."""
    real, fake = logits(8, dtype=torch.bfloat16).to(DEVICE), logits(8, seed=1, dtype=torch.bfloat16).to(DEVICE)
    with torch.autocast(torch.device(DEVICE).type, dtype=torch.bfloat16):
        loss = ragan_loss.ragan_loss(real, fake, "d")
    assert loss.dtype == torch.float32
    assert_close(loss, reference.ragan_loss(real.double(), fake.double(), "d"), torch.float32, "loss")


def test_gradients_flow_to_both_inputs():
    """No implicit detach: the caller detaches (fake for D, real for G), as ESRGAN's step does."""
    real, fake = logits(4).requires_grad_(), logits(4, seed=1).requires_grad_()
    ragan_loss.ragan_loss(real.to(DEVICE), fake.to(DEVICE), "g").backward()
    assert real.grad.abs().sum() > 0 and fake.grad.abs().sum() > 0


@pytest.mark.parametrize("real, fake, target, message", [
    (torch.zeros(4), torch.zeros(4), "D", "target must be 'd' or 'g', got 'D'"),
    (torch.zeros(0), torch.zeros(4), "d", "real_logits must be non-empty"),
    (torch.zeros(4), torch.zeros(4, dtype=torch.int64), "d", r"fake_logits must be non-empty logits in .*int64"),
])
def test_bad_inputs_name_the_argument(real, fake, target, message):
    with pytest.raises(ValueError, match=message):
        ragan_loss.ragan_loss(real.to(DEVICE), fake.to(DEVICE), target)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
def test_benchmark_batch_on_gpu(dtype):
    """The large patch map the benchmark times, 2 x 65536 logits, compiled."""
    check_against_reference(logits(1 << 16, 1, dtype=dtype), logits(1 << 16, 1, seed=1, dtype=dtype), "g")
