"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"), v0.1,
as the reference `lpips` package computes it, from weights the user has on disk (nothing is downloaded).

The weights file is the reference model's whole state dict, made once on a machine that has the `lpips`
package and torchvision's ImageNet weights:

    torch.save(lpips.LPIPS(net="alex").state_dict(), "lpips_alex.pth")   # or net="vgg"

It holds the backbone (net.sliceK.I.weight: torchvision's AlexNet or VGG16 features, cut after each ReLU
the metric reads) and the learned per-channel weights (linK.model.1.weight). The distance: both images
scaled from [0, 1] to [-1, 1] and shifted/scaled per channel (ScalingLayer), features at the 5 cuts
normalised to unit length over channels, squared differences weighted by the 1x1 `lin` convs, averaged
over space and summed over cuts. Lower is more alike; 0 for identical images.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from srcore.files import safe_load

SHIFT = (-0.030, -0.088, -0.188)  # lpips.ScalingLayer
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # lpips.normalize_tensor
# torchvision features as (index, layer) per cut: ("conv", in, out, kernel, stride, padding), ("pool", k, s), ("relu",)
ALEX = [[(0, ("conv", 3, 64, 11, 4, 2)), (1, ("relu",))],
        [(2, ("pool", 3, 2)), (3, ("conv", 64, 192, 5, 1, 2)), (4, ("relu",))],
        [(5, ("pool", 3, 2)), (6, ("conv", 192, 384, 3, 1, 1)), (7, ("relu",))],
        [(8, ("conv", 384, 256, 3, 1, 1)), (9, ("relu",))],
        [(10, ("conv", 256, 256, 3, 1, 1)), (11, ("relu",))]]
VGG_CUTS = [(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)]  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
VGG_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]


def vgg_layers() -> list[tuple]:
    """torchvision VGG16 features up to relu5_3, as layer specs in index order."""
    layers, channels = [], 3
    for item in VGG_CONFIG:
        if item == "M":
            layers.append(("pool", 2, 2))
        else:
            layers += [("conv", channels, item, 3, 1, 1), ("relu",)]
            channels = item
    return layers


def make_layer(spec: tuple) -> nn.Module:
    if spec[0] == "conv":
        _, cin, cout, kernel, stride, padding = spec
        return nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding)
    return nn.MaxPool2d(spec[1], spec[2]) if spec[0] == "pool" else nn.ReLU()


def slices(net: str) -> list[list[tuple[int, tuple]]]:
    if net == "alex":
        return ALEX
    layers = vgg_layers()
    return [[(i, layers[i]) for i in range(start, stop)] for start, stop in VGG_CUTS]


def lin_layer(width: int) -> nn.Module:
    """lpips.NetLinLayer: `.model` = [Dropout (inactive in eval), 1x1 conv to one channel, no bias]."""
    lin = nn.Module()
    lin.model = nn.Sequential(nn.Dropout(), nn.Conv2d(width, 1, 1, bias=False))
    return lin


class LPIPS(nn.Module):
    """LPIPS v0.1 over `net` ("alex" or "vgg") features; state-dict keys as the reference's."""

    def __init__(self, net: str):
        super().__init__()
        if net not in ("alex", "vgg"):
            raise ValueError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
        self.net = nn.Module()
        cuts = slices(net)
        for k, cut in enumerate(cuts, start=1):
            setattr(self.net, f"slice{k}", nn.Sequential(OrderedDict((str(i), make_layer(s)) for i, s in cut)))
        widths = [[s for _, s in cut if s[0] == "conv"][-1][2] for cut in cuts]
        self.lins = nn.ModuleList(lin_layer(width) for width in widths)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """a, b: (B, 3, H, W) in [0, 1] -> (B,) distances."""
        feats = [((2 * x - 1) - self.shift) / self.scale for x in (a, b)]
        total = 0
        for k, lin in enumerate(self.lins, start=1):
            feats = [getattr(self.net, f"slice{k}")(f) for f in feats]  # (B, C_k, H_k, W_k)
            unit = [f / (f.pow(2).sum(1, keepdim=True).sqrt() + EPS) for f in feats]
            total = total + lin.model((unit[0] - unit[1]) ** 2).mean((2, 3))  # (B, 1)
        return total[:, 0]


def load_lpips(path: str | Path) -> LPIPS:
    """The LPIPS model in a saved lpips.LPIPS state dict (see the module docstring), in eval mode; errors
    name the file and what it lacks."""
    state = safe_load(path, "LPIPS weights")
    if not isinstance(state, dict) or "net.slice1.0.weight" not in state:
        raise ValueError(f"LPIPS weights {path}: expected a saved lpips.LPIPS(...).state_dict() with keys "
                         f"net.slice1.0.weight ... and lin0.model.1.weight ...; got "
                         f"{'keys ' + ', '.join(list(state)[:4]) if isinstance(state, dict) else type(state).__name__}")
    net = "alex" if state["net.slice1.0.weight"].shape[-1] == 11 else "vgg"
    model = LPIPS(net)
    # lins.K.model.1.weight is also saved as linK.model.1.weight (the reference registers each twice)
    wanted = {key: state.get(key, state.get(re.sub(r"^lins\.(\d+)\.", r"lin\1.", key))) for key in model.state_dict()}
    missing = [key for key, value in wanted.items() if value is None]
    if missing:
        raise ValueError(f"LPIPS weights {path} ({net}): missing {', '.join(missing[:5])}")
    try:
        model.load_state_dict(wanted)
    except RuntimeError as error:
        raise ValueError(f"LPIPS weights {path} ({net}) do not fit its network: {error}") from error
    return model.eval()


def lpips_distance(model: LPIPS, device: str = "cpu"):
    """model as an srcore.evaluate.Distance: (3, H, W) SR and HR in [0, 1] -> float."""
    model = model.to(device)

    def distance(sr: torch.Tensor, hr: torch.Tensor) -> float:
        return float(model(sr.float()[None].to(device), hr.float()[None].to(device))[0])

    return distance
