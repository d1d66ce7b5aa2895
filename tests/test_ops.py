"""`runtime.kernels` resolution: `auto` picks Triton only on CUDA devices that can run every compiled variant."""
import pytest

from kernels.conv_block import max_shared_bytes
from srcore import ops

A100, H100, RTX_4090 = ((8, 0), 166912, "A100"), ((9, 0), 232448, "H100"), ((8, 9), 101376, "RTX 4090")
T4, SMALL = ((7, 5), 65536, "Tesla T4"), ((8, 6), 49152, "a card with 48 KiB")


@pytest.fixture
def device(monkeypatch):
    """Pretend cuda:0 is the card given to the returned setter (no GPU needed)."""
    ops._auto_on_cuda.cache_clear()

    def use(limits):
        monkeypatch.setattr(ops, "device_limits", lambda index: limits)
    yield use
    ops._auto_on_cuda.cache_clear()


@pytest.mark.parametrize("card", [A100, H100, RTX_4090], ids=lambda c: c[2])
def test_auto_is_triton_where_every_variant_fits(device, card):
    device(card)
    assert ops.resolve_backend("auto", "cuda:0") == "triton"


@pytest.mark.parametrize("card, why", [(T4, "compute capability 7.5 has no bf16 tensor-core MMA"),
                                       (SMALL, f"49152 B of shared memory per block, the kernels' tiles need "
                                               f"{max_shared_bytes()} B")], ids=["pre-Ampere", "small shared"])
def test_auto_falls_back_to_the_reference_and_says_why_once(device, capsys, card, why):
    device(card)
    assert ops.resolve_backend("auto", "cuda:0") == "torch"
    assert ops.resolve_backend("auto", "cuda:0") == "torch"
    err = capsys.readouterr().err
    assert err.count("runtime.kernels=auto") == 1 and why in err and card[2] in err


def test_auto_off_cuda_and_explicit_names(device):
    device(T4)  # never consulted
    assert ops.resolve_backend("auto", "cpu") == "torch"
    assert ops.resolve_backend("triton", "cuda:0") == "triton" and ops.resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ValueError, match="runtime.kernels must be one of auto, triton, torch, got 'cuda'"):
        ops.resolve_backend("cuda", "cpu")
