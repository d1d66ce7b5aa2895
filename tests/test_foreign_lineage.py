"""Foreign SRCNN, VDSR and MDSR weights: each public port's network is rebuilt here as its code defines it
(module names, padding, pixel range), given random weights, and its state dict converted by
srcore.foreign_lineage must give srcore's generator computing the same function, at every scale."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from srcore.checkpoint import rebuild_generator
from srcore.foreign_lineage import LINEAGE_LAYOUTS
from srcore.models import DIV2K_RGB_MEAN
from srcore.multiscale import select_scale
from srcore.resize import imresize
from srcore.weights import LAYOUTS
from srcore.ychannel import luma

RANGE = 255.0  # EDSR-PyTorch's rgb_range


class SRCNNYjn870(nn.Module):  # yjn870/SRCNN-pytorch models.py, widths shrunk
    def __init__(self, channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 8, 9, padding=4)
        self.conv2 = nn.Conv2d(8, 4, 5, padding=2)
        self.conv3 = nn.Conv2d(4, channels, 5, padding=2)

    def forward(self, x):
        return self.conv3(F.relu(self.conv2(F.relu(self.conv1(x)))))


class SRCNNLornatang(nn.Module):  # Lornatang/SRCNN-PyTorch model.py (eval mode: padded), 9-1-5
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 9, padding=4), nn.ReLU())
        self.map = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU())
        self.reconstruction = nn.Conv2d(4, 1, 5, padding=2)

    def forward(self, x):
        return self.reconstruction(self.map(self.features(x)))


class ConvReLU(nn.Module):  # both VDSR ports' block
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)

    def forward(self, x):
        return F.relu(self.conv(x))


class VDSRTwtygqyy(nn.Module):  # twtygqyy/pytorch-vdsr vdsr.py, 18 -> 3 middle layers
    def __init__(self):
        super().__init__()
        self.residual_layer = nn.Sequential(*(ConvReLU() for _ in range(3)))
        self.input = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.output = nn.Conv2d(8, 1, 3, padding=1, bias=False)

    def forward(self, x):
        return self.output(self.residual_layer(F.relu(self.input(x)))) + x


class VDSRLornatang(nn.Module):  # Lornatang/VDSR-PyTorch model.py, 18 -> 3 trunk layers
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.ReLU())
        self.trunk = nn.Sequential(*(ConvReLU() for _ in range(3)))
        self.conv2 = nn.Conv2d(8, 1, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv2(self.trunk(self.conv1(x))) + x


class ResBlock(nn.Module):  # EDSR-PyTorch common.ResBlock (res_scale 1)
    def __init__(self, feat: int, kernel: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(feat, feat, kernel, padding=kernel // 2), nn.ReLU(),
                                  nn.Conv2d(feat, feat, kernel, padding=kernel // 2))

    def forward(self, x):
        return x + self.body(x)


def upsampler(scale: int, feat: int) -> nn.Sequential:  # EDSR-PyTorch common.Upsampler, no activation
    steps = [2, 2] if scale == 4 else [scale]
    return nn.Sequential(*(m for r in steps for m in (nn.Conv2d(feat, r * r * feat, 3, padding=1), nn.PixelShuffle(r))))


def mean_shift(sign: int) -> nn.Conv2d:  # EDSR-PyTorch common.MeanShift, rgb_std 1
    conv = nn.Conv2d(3, 3, 1)
    conv.weight.data = torch.eye(3).view(3, 3, 1, 1)
    conv.bias.data = sign * RANGE * torch.tensor(DIV2K_RGB_MEAN)
    return conv


class MDSREdsrPytorch(nn.Module):  # EDSR-PyTorch src/model/mdsr.py on [0, 255] pixels
    def __init__(self, scales: list[int], feat: int = 8, num_block: int = 2):
        super().__init__()
        self.scales = scales
        self.sub_mean, self.add_mean = mean_shift(-1), mean_shift(1)
        self.head = nn.Sequential(nn.Conv2d(3, feat, 3, padding=1))
        self.pre_process = nn.ModuleList(nn.Sequential(ResBlock(feat, 5), ResBlock(feat, 5)) for _ in scales)
        self.body = nn.Sequential(*(ResBlock(feat, 3) for _ in range(num_block)), nn.Conv2d(feat, feat, 3, padding=1))
        self.upsample = nn.ModuleList(upsampler(s, feat) for s in scales)
        self.tail = nn.Sequential(nn.Conv2d(feat, 3, 3, padding=1))

    def forward(self, x, scale: int):  # x in [0, 1]; EDSR-PyTorch feeds 0..255
        i = self.scales.index(scale)
        h = self.pre_process[i](self.head(self.sub_mean(x * RANGE)))
        return self.add_mean(self.tail(self.upsample[i](self.body(h) + h))) / RANGE


def randomised(net: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "mean" not in name:  # MeanShift stays what it is
                p.copy_(0.1 * torch.randn_like(p) * (RANGE if name.endswith("bias") and
                                                     isinstance(net, MDSREdsrPytorch) else 1))
    return net.double().eval()


def convert(state: dict) -> tuple[str, nn.Module]:
    """The one LINEAGE_LAYOUTS entry `state` matches (across srcore.weights' layouts too), and its model."""
    state = {k: v for k, v in state.items()}
    matches = [name for name, (keys, _) in {**LAYOUTS, **LINEAGE_LAYOUTS}.items() if all(k in state for k in keys)]
    assert len(matches) == 1, matches
    arch, args, weights = LINEAGE_LAYOUTS[matches[0]][1](state)
    return matches[0], rebuild_generator(arch, args, weights, matches[0]).double()


PORTS = {"srcnn-yjn870": SRCNNYjn870, "srcnn-lornatang": SRCNNLornatang, "vdsr-twtygqyy": VDSRTwtygqyy,
         "vdsr-lornatang": VDSRLornatang}


@pytest.mark.parametrize("layout", list(PORTS))
def test_y_ports_give_the_same_y_at_every_scale(layout: str):
    port = randomised(PORTS[layout]())
    name, model = convert(port.state_dict())
    assert name == layout and model.arch_args["colour"] == "y" and model.arch_args["scales"] == (2, 3, 4)
    x = torch.rand(2, 3, 7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for scale in (2, 3, 4):
        with torch.no_grad():
            ours = luma(select_scale(model, scale)(x))
            theirs = port(imresize(luma(x), scale=scale))  # the ports' input: bicubic Y in [0, 1]
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)


def test_rgb_srcnn_port():
    port = randomised(SRCNNYjn870(channels=3))
    _, model = convert(port.state_dict())
    assert model.arch_args["colour"] == "rgb" and model.arch_args["sizes"] == (9, 5, 5)
    x = torch.rand(1, 3, 6, 5, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x, scale=3), port(imresize(x, scale=3)), rtol=0, atol=1e-10)


@pytest.mark.parametrize("scales", [[2, 3, 4], [4, 2]])
def test_edsr_pytorch_mdsr_at_each_of_its_scales(scales: list[int]):
    port = randomised(MDSREdsrPytorch(scales))
    name, model = convert(port.state_dict())
    assert name == "mdsr-edsr-pytorch"
    assert model.arch_args["scales"] == tuple(sorted(scales)) and model.arch_args["scale"] == 4
    x = torch.rand(1, 3, 7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for scale in scales:  # the means are float32 constants on both sides, rounded differently: ~1e-8 apart
        with torch.no_grad():
            torch.testing.assert_close(model(x, scale=scale), port(x, scale), rtol=0, atol=1e-6)


def test_layouts_that_do_not_fit_name_the_problem():
    state = randomised(SRCNNYjn870()).state_dict()
    state["conv2.weight"] = torch.zeros(6, 8, 5, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"conv2 has 6 filters for 8 in conv1; srcore's SRCNN halves"):
        LINEAGE_LAYOUTS["srcnn-yjn870"][1](state)
    state = randomised(VDSRTwtygqyy()).state_dict()
    with pytest.raises(ValueError, match=r"unexpected tensor extra.weight"):
        LINEAGE_LAYOUTS["vdsr-twtygqyy"][1]({**state, "extra.weight": torch.zeros(1)})
    state = randomised(MDSREdsrPytorch([2])).state_dict()
    state["upsample.0.0.weight"] = torch.zeros(16 * 8, 8, 3, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"upsample.0 has convs of \(16,\) x 8 channels"):
        LINEAGE_LAYOUTS["mdsr-edsr-pytorch"][1](state)


def test_no_layout_hides_another():
    """weights.detect_layout takes the first layout whose keys a file has: no layout's keys may include
    another's."""
    table = LAYOUTS
    assert set(LINEAGE_LAYOUTS) <= set(table)  # weights.py's table includes the lineage's layouts
    for a, (keys_a, _) in table.items():
        for b, (keys_b, _) in table.items():
            assert a == b or not set(keys_a) <= set(keys_b), (a, b)


def test_load_generator_recognises_the_ports_files(tmp_path):
    """Wired into srcore.weights: `srcore upscale --model mdsr_x2_x3_x4.pt` and friends just work."""
    from srcore.weights import load_generator

    for port, layout in ((MDSREdsrPytorch([2, 3, 4]), "mdsr"), (VDSRTwtygqyy(), "vdsr"), (SRCNNYjn870(), "srcnn")):
        torch.save(randomised(port).float().state_dict(), tmp_path / f"{layout}.pth")
        assert load_generator(tmp_path / f"{layout}.pth").name == layout
