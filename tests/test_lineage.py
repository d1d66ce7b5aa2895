"""SRCNN, VDSR and MDSR: forward and backward on odd sizes at every scale, the Y-channel path against the same
computation written out by hand, MDSR's scale selection, one checkpoint at each of its scales, the papers'
sizes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srcore.checkpoint import save_generator
from srcore.infer import upscale_tiled
from srcore.metrics import rgb_to_y
from srcore.models import build_generator
from srcore.multiscale import model_scales, select_scale
from srcore.resize import imresize
from srcore.weights import load_generator
from srcore.ychannel import is_luma_model

SCALES = (2, 3, 4)
VARIANTS = {  # tiny versions of every lineage configuration
    "srcnn-9-5-5-y": ("srcnn", dict(colour="y", sizes=(9, 5, 5), num_feat=8)),
    "srcnn-9-1-5-rgb": ("srcnn", dict(colour="rgb", sizes=(9, 1, 5), num_feat=8)),
    "vdsr-y": ("vdsr", dict(colour="y", num_feat=8, num_layers=5)),
    "vdsr-rgb-no-bias": ("vdsr", dict(colour="rgb", num_feat=8, num_layers=5, bias=False)),
    "mdsr": ("mdsr", dict(num_feat=8, num_block=2)),
}
# MATLAB rgb2ycbcr's constants for [0, 1] images, as its documentation gives them.
T = torch.tensor([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]],
                 dtype=torch.float64) / 255
OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64).view(1, 3, 1, 1) / 255


def lr_input(seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """(2, 3, 7, 9) in [0, 1]: odd H and W, H != W."""
    return torch.rand(2, 3, 7, 9, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def variant(key: str, **kwargs) -> torch.nn.Module:
    name, args = VARIANTS[key]
    torch.manual_seed(0)
    model = build_generator(name, **{"scale": 4, "scales": SCALES, **args, **kwargs})
    with torch.no_grad():  # every weight and bias random and non-zero, so a mix-up of layers shows
        for p in model.parameters():
            p.copy_(0.2 * torch.randn_like(p))
    return model


def head_scale(parameter_name: str) -> int | None:
    """The scale an MDSR parameter belongs to (pre.x2..., upsample.x3...), None for shared ones."""
    parts = parameter_name.split(".")
    return int(parts[1][1:]) if parts[0] in ("pre", "upsample") else None


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("key", list(VARIANTS))
def test_forward_backward_on_odd_sizes(key: str, scale: int):
    model = variant(key)
    out = model(lr_input(), scale=scale)
    assert out.shape == (2, 3, 7 * scale, 9 * scale) and torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    for name, p in model.named_parameters():
        if head_scale(name) not in (None, scale):  # MDSR: the other scales' heads take no part
            assert p.grad is None, name
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def ycbcr_by_hand(rgb: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", T, rgb) + OFFSET


def rgb_by_hand(ycbcr: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(T), ycbcr - OFFSET)


def y_network_by_hand(name: str, state: dict, y: torch.Tensor) -> torch.Tensor:
    """The model's Y network written from its layers: y (B, 1, H, W), bicubic-upscaled, -> (B, 1, H, W)."""
    def conv(layer: str, h: torch.Tensor) -> torch.Tensor:
        weight = state[f"{layer}.weight"]
        return F.conv2d(h, weight, state.get(f"{layer}.bias"), padding=weight.shape[-1] // 2)

    if name == "srcnn":  # no global residual in the paper's SRCNN
        return conv("conv_last", F.relu(conv("conv_map", F.relu(conv("conv_first", y)))))
    h = F.relu(conv("conv_first", y))
    for i in range(len({k.split(".")[1] for k in state if k.startswith("body.")})):
        h = F.relu(conv(f"body.{i}", h))
    return conv("conv_last", h) + y  # VDSR's residual over its input


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("key", ["srcnn-9-5-5-y", "vdsr-y"])
def test_y_path_equals_the_y_network_by_hand_merged_with_bicubic_cbcr(key: str, scale: int):
    model = variant(key).double().eval()
    assert is_luma_model(model) and model.arch_args["colour"] == "y"
    x = lr_input(dtype=torch.float64)
    with torch.no_grad():
        out = model(x, scale=scale)
        up = imresize(ycbcr_by_hand(x), scale=scale)  # Y, Cb and Cr, each MATLAB bicubic
        y = y_network_by_hand(VARIANTS[key][0], model.state_dict(), up[:, :1])
        expected = rgb_by_hand(torch.cat([y, up[:, 1:]], 1))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    # The protocol scores Y: the Y of the RGB output is exactly what the network made.
    scored = rgb_to_y(out[0].permute(1, 2, 0).numpy() * 255)
    np.testing.assert_allclose(scored, y[0, 0].numpy() * 255, rtol=0, atol=1e-9)


def test_y_model_keeps_grey_images_grey():
    model = variant("vdsr-y").double().eval()
    grey = lr_input(dtype=torch.float64)[:, :1].expand(-1, 3, -1, -1)
    with torch.no_grad():
        out = model(grey, scale=3)
    torch.testing.assert_close(out[:, 1:], out[:, :1].expand(-1, 2, -1, -1), rtol=0, atol=1e-12)


def test_y_model_tiles_like_the_whole_image():
    """srcore upscale's tiled path runs a Y model unchanged; pad >= its receptive radius (VDSR-5 at x2:
    ceil(5 / 2) + 2 bicubic = 5 LR pixels) gives the whole-image result."""
    model = variant("vdsr-y", scale=2).eval()
    lr = torch.rand(3, 13, 11, generator=torch.Generator().manual_seed(3))
    whole = upscale_tiled(model, lr, 2, tile=0, channels_last=False)
    tiled = upscale_tiled(model, lr, 2, tile=5, pad=5, channels_last=False)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)


def test_mdsr_selects_its_scale_heads_by_name():
    model = variant("mdsr")
    keys = set(model.state_dict())
    for s in SCALES:
        assert f"pre.x{s}.1.conv2.weight" in keys and f"upsample.x{s}.0.conv.weight" in keys
    assert "upsample.x4.1.conv.weight" in keys and "upsample.x2.1.conv.weight" not in keys  # x4: two x2 steps
    with pytest.raises(ValueError, match=r"mdsr upscales x2, x3, x4; asked for x5"):
        model(lr_input(), scale=5)


@pytest.mark.parametrize("key", ["mdsr", "vdsr-y"])
def test_select_scale_is_a_view_with_another_default(key: str):
    model = variant(key).eval()
    x = lr_input()
    for s in SCALES:
        view = select_scale(model, s)
        assert view.scale == s and view.arch_args == {**model.arch_args, "scale": s}
        assert view.conv_first.weight is model.conv_first.weight  # shared, not copied
        with torch.no_grad():
            assert torch.equal(view(x), model(x, scale=s))
    assert select_scale(model, 4) is model and model.scale == 4 and model.arch_args["scale"] == 4
    with torch.no_grad():
        assert model(x).shape[-1] == 36  # the model's own default is untouched


def test_select_scale_names_the_scales_a_model_has():
    mdsr = variant("mdsr", scales=(2, 4))
    with pytest.raises(ValueError, match=r"this mdsr model upscales x2, x4; asked for x3"):
        select_scale(mdsr, 3)
    torch.manual_seed(0)
    edsr = build_generator("edsr", scale=4, num_feat=8, num_block=1)
    assert model_scales(edsr) == (4,) and select_scale(edsr, 4) is edsr
    with pytest.raises(ValueError, match=r"this edsr model upscales x4; asked for x2"):
        select_scale(edsr, 2)
    with pytest.raises(ValueError, match=r"default scale 3 must be one of its scales \[2, 4\]"):
        build_generator("mdsr", scale=3, scales=[4, 2])


def test_one_checkpoint_upscales_at_each_of_its_scales(tmp_path: Path):
    model = variant("mdsr").eval()
    save_generator(tmp_path / "mdsr.pt", model, step=1)
    loaded = load_generator(tmp_path / "mdsr.pt")
    assert model_scales(loaded) == SCALES and loaded.arch_args["scale"] == 4
    x = lr_input()
    with torch.no_grad():
        for s in SCALES:
            assert torch.equal(select_scale(loaded, s)(x), model(x, scale=s))
    save_generator(tmp_path / "mdsr_x2.pt", select_scale(model, 2), step=1)  # a view saves as a x2 default
    assert load_generator(tmp_path / "mdsr_x2.pt", expect_scale=2).arch_args["scales"] == SCALES


@pytest.mark.parametrize("name, kwargs, published, tolerance, biases", [
    ("srcnn", dict(sizes=(9, 5, 5)), 57_184, 0, False),  # SRCNN paper: weights of 9-5-5, 64/32 filters, on Y
    ("srcnn", dict(sizes=(9, 1, 5)), 8_032, 0, False),  # and of 9-1-5
    ("vdsr", dict(), 665e3, 0.5e3, False),  # VDSR's 665K of later papers' tables: its weights (biases: 666K)
    ("mdsr", dict(num_block=16, scales=SCALES), 3.2e6, 0.05e6, True),  # EDSR paper, Table 1: baseline MDSR
    ("mdsr", dict(num_block=80, scales=SCALES), 8.0e6, 0.05e6, True),  # and MDSR
])
def test_paper_sizes(name: str, kwargs: dict, published: float, tolerance: float, biases: bool):
    with torch.device("meta"):
        model = build_generator(name, **kwargs)
    count = sum(p.numel() for p in model.parameters() if biases or p.dim() > 1)
    assert abs(count - published) <= tolerance, count
