"""`srcore export --layout basicsr|esrgan`: files that BasicSR, ESRGAN and spandrel load as the same network.

Without the peers: the files hold the documented keys, and a forward written by hand from those keys (as
BasicSR's and ESRGAN's code computes it) equals srcore's model. With the peers installed beside srcore
(BasicSR 1.4.2, spandrel 0.4.2; not in CI), their own loaders and networks are checked too; those tests
skip, saying so, where a peer is absent.
"""
import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from srcore.checkpoint import save_checkpoint
from srcore.cli import main
from srcore.models import DIV2K_RGB_MEAN, build_generator
from srcore.weights import load_generator

RRDB = dict(num_feat=8, num_block=2, num_grow_ch=32)  # spandrel assumes ESRGAN's growth of 32
EDSR = dict(num_feat=8, num_block=3)


def random_model(arch: str, scale: int = 4, seed: int = 0, **kwargs) -> torch.nn.Module:
    """Every tensor random, biases too, so a bias that lands on the wrong conv or range shows."""
    torch.manual_seed(seed)
    model = build_generator(arch, scale=scale, **{**(RRDB if arch == "rrdb" else EDSR), **kwargs}).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.05 * torch.randn_like(p))
    return model


def training_checkpoint(tmp_path: Path, arch: str, scale: int = 4) -> tuple[Path, torch.nn.Module, torch.nn.Module]:
    """A training checkpoint holding different raw and EMA weights, as srcore's training writes them."""
    raw, ema = random_model(arch, scale, seed=0), random_model(arch, scale, seed=1)
    path = tmp_path / f"{arch}_train.pt"
    save_checkpoint(path, {"arch": arch, "arch_args": raw.arch_args, "model": raw.state_dict(),
                           "ema": ema.state_dict(), "step": 5})
    return path, raw, ema


def export(tmp_path: Path, source: Path, layout: str, name: str, *extra: str) -> Path:
    out = tmp_path / name
    assert main(["export", str(source), "-o", str(out), "--layout", layout, *extra]) == 0
    return out


def conv(state: dict, name: str, h: torch.Tensor, act: bool = False) -> torch.Tensor:
    weight = state[f"{name}.weight"]
    out = F.conv2d(h, weight, state[f"{name}.bias"], padding=weight.shape[-1] // 2)
    return F.leaky_relu(out, 0.2) if act else out


def esrgan_forward(state: dict, x: torch.Tensor, num_block: int) -> torch.Tensor:
    """ESRGAN's RRDBNet_arch.py forward, written from its key names: x (B, 3, H, W) in [0, 1] -> x4."""
    fea = conv(state, "conv_first", x)
    trunk = fea
    for n in range(num_block):
        rrdb_in = trunk
        for k in (1, 2, 3):
            feats = [trunk]
            for i in range(1, 5):
                feats.append(conv(state, f"RRDB_trunk.{n}.RDB{k}.conv{i}", torch.cat(feats, 1), act=True))
            trunk = trunk + 0.2 * conv(state, f"RRDB_trunk.{n}.RDB{k}.conv5", torch.cat(feats, 1))
        trunk = rrdb_in + 0.2 * trunk
    fea = fea + conv(state, "trunk_conv", trunk)
    for i in (1, 2):
        fea = conv(state, f"upconv{i}", F.interpolate(fea, scale_factor=2, mode="nearest"), act=True)
    return conv(state, "conv_last", conv(state, "HRconv", fea, act=True))


def basicsr_edsr_forward(state: dict, x: torch.Tensor, num_block: int, steps: list[int]) -> torch.Tensor:
    """BasicSR's edsr_arch.EDSR forward (res_scale 1, img_range 255), from its key names."""
    mean = torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1)
    fea = conv(state, "conv_first", (x - mean) * 255.0)
    res = fea
    for n in range(num_block):
        res = res + conv(state, f"body.{n}.conv2", F.relu(conv(state, f"body.{n}.conv1", res)))
    res = conv(state, "conv_after_body", res) + fea
    for k, factor in enumerate(steps):
        res = F.pixel_shuffle(conv(state, f"upsample.{2 * k}", res), factor)
    return conv(state, "conv_last", res) / 255.0 + mean


def test_basicsr_layout_holds_params_and_params_ema_with_basicsrs_rrdb_names(tmp_path: Path):
    source, raw, ema = training_checkpoint(tmp_path, "rrdb")
    saved = torch.load(export(tmp_path, source, "basicsr", "net_g.pth"), weights_only=True)
    assert set(saved) == {"params", "params_ema"}
    for key, model in (("params", raw), ("params_ema", ema)):
        assert saved[key].keys() == model.state_dict().keys()  # BasicSR's RRDBNet names are srcore's
        assert all(torch.equal(saved[key][k], v) for k, v in model.state_dict().items())


def test_esrgan_layout_computes_what_esrgan_computes(tmp_path: Path):
    source, _, ema = training_checkpoint(tmp_path, "rrdb")
    state = torch.load(export(tmp_path, source, "esrgan", "RRDB_x4.pth"), weights_only=True)
    assert "RRDB_trunk.1.RDB3.conv5.weight" in state and "HRconv.bias" in state
    x = torch.rand(1, 3, 7, 6)
    with torch.no_grad():
        torch.testing.assert_close(esrgan_forward(state, x, num_block=2), ema(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("scale, steps", [(4, [2, 2]), (3, [3]), (2, [2])])
def test_basicsr_edsr_layout_computes_what_basicsrs_edsr_computes(tmp_path: Path, scale: int, steps: list[int]):
    model = random_model("edsr", scale)
    save_checkpoint(tmp_path / "edsr.pt", {"arch": "edsr", "arch_args": model.arch_args, "model": model.state_dict()})
    saved = torch.load(export(tmp_path, tmp_path / "edsr.pt", "basicsr", "EDSR.pth"), weights_only=True)
    assert set(saved) == {"params"} and "conv_after_body.weight" in saved["params"]
    x = torch.rand(2, 3, 6, 5)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(basicsr_edsr_forward(saved["params"], x, 3, steps), expected, atol=2e-5, rtol=0)
    torch.testing.assert_close(load_generator(tmp_path / "EDSR.pth")(x).detach(), expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("arch, kwargs, layout, reason", [
    ("edsr", dict(global_residual=True), "basicsr", "bicubic upscale of the input"),
    ("rrdb", dict(global_residual=True), "esrgan", "bicubic upscale of the input"),
    ("srresnet", dict(num_feat=8, num_block=1), "basicsr", "holds rrdb and edsr networks only; srcore's SRResNet"),
    ("edsr", {}, "esrgan", "the esrgan layout holds rrdb networks only"),
    ("rrdb", dict(scale=2), "basicsr", "x2 RRDBNet"),
    ("edsr", dict(in_ch=1, out_ch=1), "basicsr", "subtracts an RGB mean"),
])
def test_what_has_no_counterpart_is_refused_with_the_reason(tmp_path: Path, capsys, arch, kwargs, layout, reason):
    scale = kwargs.pop("scale", 4)
    sizes = {"rrdb": RRDB, "edsr": EDSR}.get(arch, {})
    model = build_generator(arch, scale=scale, **{**sizes, **kwargs})
    save_checkpoint(tmp_path / "m.pt", {"arch": arch, "arch_args": model.arch_args, "model": model.state_dict()})
    assert main(["export", str(tmp_path / "m.pt"), "-o", str(tmp_path / "x.pth"), "--layout", layout]) == 2
    assert f"in the {layout} layout: " in (err := capsys.readouterr().err) and reason in err
    assert not (tmp_path / "x.pth").exists()


# --- the peers' own loaders, where they are installed beside srcore -------------------------------------

def peer(name: str):
    """Import a peer package, or skip. torchvision's PyPI wheels are CUDA builds whose C ops do not load with
    a CPU build of torch ("operator torchvision::nms does not exist" while importing torchvision); the
    peers' code used here needs none of those ops, so their fake-tensor registration is skipped, and
    BasicSR 1.4.2's import of torchvision.transforms.functional_tensor is pointed at its current name."""
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed beside srcore (optional peer check; the hand-written checks above ran)")
    if importlib.util.find_spec("torchvision") is not None and "torchvision" not in sys.modules:
        sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
        functional = importlib.import_module("torchvision.transforms._functional_tensor")
        sys.modules.setdefault("torchvision.transforms.functional_tensor", functional)
    return importlib.import_module(name)


def basicsr_load(net: torch.nn.Module, path: Path, param_key: str) -> torch.nn.Module:
    """BasicSR's own BaseModel.load_network (strict), without building a whole BasicSR model around it."""
    base_model = importlib.import_module("basicsr.models.base_model").BaseModel
    base_model.load_network(base_model.__new__(base_model), net, str(path), strict=True, param_key=param_key)
    return net.eval()


def test_basicsr_loads_the_export_with_both_its_param_keys(tmp_path: Path):
    peer("basicsr")
    from basicsr.archs.rrdbnet_arch import RRDBNet

    source, raw, ema = training_checkpoint(tmp_path, "rrdb")
    path = export(tmp_path, source, "basicsr", "net_g.pth")
    x = torch.rand(1, 3, 8, 7)
    for key, model in (("params_ema", ema), ("params", raw)):
        net = basicsr_load(RRDBNet(3, 3, scale=4, **RRDB), path, key)
        with torch.no_grad():
            assert (net(x) - model(x)).abs().max() == 0, key


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_basicsr_edsr_loads_the_export(tmp_path: Path, scale: int):
    peer("basicsr")
    from basicsr.archs.edsr_arch import EDSR as BasicsrEDSR

    model = random_model("edsr", scale)
    save_checkpoint(tmp_path / "edsr.pt", {"arch": "edsr", "arch_args": model.arch_args, "model": model.state_dict()})
    net = basicsr_load(BasicsrEDSR(3, 3, upscale=scale, img_range=255.0, rgb_mean=DIV2K_RGB_MEAN, **EDSR),
                       export(tmp_path, tmp_path / "edsr.pt", "basicsr", "EDSR.pth"), "params")
    x = torch.rand(1, 3, 8, 7)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x), atol=2e-5, rtol=0)


@pytest.mark.parametrize("layout, name", [("basicsr", "net_g.pth"), ("esrgan", "RRDB_x4.pth"),
                                          ("esrgan", "RRDB_x4.safetensors")])
def test_spandrel_loads_the_export_as_the_ema_model(tmp_path: Path, layout: str, name: str):
    spandrel = peer("spandrel")
    source, _, ema = training_checkpoint(tmp_path, "rrdb")
    descriptor = spandrel.ModelLoader().load_from_file(str(export(tmp_path, source, layout, name)))
    assert descriptor.scale == 4
    x = torch.rand(1, 3, 8, 7)
    with torch.no_grad():
        assert (descriptor.model.eval()(x) - ema(x)).abs().max() <= 1e-6


def test_basicsrs_own_files_load_into_srcore_exactly(tmp_path: Path):
    peer("basicsr")
    from basicsr.archs.edsr_arch import EDSR as BasicsrEDSR
    from basicsr.archs.rrdbnet_arch import RRDBNet

    torch.manual_seed(0)
    x = torch.rand(1, 3, 8, 7)
    for net, name in ((RRDBNet(3, 3, scale=4, **RRDB), "rrdb.pth"), (BasicsrEDSR(3, 3, upscale=4, **EDSR), "edsr.pth")):
        net.eval()
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(0.05 * torch.randn_like(p))
        torch.save({"params": net.state_dict()}, tmp_path / name)  # as BasicSR's save_network writes it
        with torch.no_grad():
            torch.testing.assert_close(load_generator(tmp_path / name)(x), net(x), atol=2e-5, rtol=0)
