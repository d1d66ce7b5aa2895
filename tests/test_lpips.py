"""LPIPS from local weights: against the reference `lpips` package where it is installed (not in CI), and
always against the metric's definition written out step by step from the weights file."""
import importlib
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srcore.cli import main
from srcore.imageio import read_image, write_png
from srcore.lpips import LPIPS, load_lpips

SET5 = Path(__file__).parents[1] / "data" / "benchmark" / "Set5" / "HR"


def random_weights(tmp_path: Path, net: str, seed: int = 0) -> Path:
    """An LPIPS state dict as the reference saves it (linK and lins.K keys both), random but positive lins."""
    torch.manual_seed(seed)
    state = LPIPS(net).state_dict()
    state = {key: (value.abs() if key.startswith("lins.") else value) for key, value in state.items()}
    state.update({key.replace("lins.", "lin", 1): value for key, value in state.items() if key.startswith("lins.")})
    torch.save(state, tmp_path / f"{net}.pth")
    return tmp_path / f"{net}.pth"


def definition(state: dict, a: torch.Tensor, b: torch.Tensor, net: str) -> torch.Tensor:
    """LPIPS v0.1 as Zhang et al. define it, from the saved keys: (B, 3, H, W) in [0, 1] -> (B,)."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    if net == "alex":  # torchvision AlexNet features: (index, stride, padding, max-pool before it)
        convs = [[(0, 4, 2, False)], [(3, 1, 2, True)], [(6, 1, 1, True)], [(8, 1, 1, False)], [(10, 1, 1, False)]]
        pool = (3, 2)
    else:  # VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
        convs = [[(0, 1, 1, False), (2, 1, 1, False)], [(5, 1, 1, True), (7, 1, 1, False)],
                 [(10, 1, 1, True), (12, 1, 1, False), (14, 1, 1, False)],
                 [(17, 1, 1, True), (19, 1, 1, False), (21, 1, 1, False)],
                 [(24, 1, 1, True), (26, 1, 1, False), (28, 1, 1, False)]]
        pool = (2, 2)
    feats = [((2 * x - 1) - shift) / scale for x in (a, b)]
    total = torch.zeros(a.shape[0])
    for k, cut in enumerate(convs):
        for index, stride, padding, pooled in cut:
            weight, bias = state[f"net.slice{k + 1}.{index}.weight"], state[f"net.slice{k + 1}.{index}.bias"]
            feats = [F.relu(F.conv2d(F.max_pool2d(f, *pool) if pooled else f, weight, bias, stride, padding))
                     for f in feats]
        unit = [f / (f.norm(dim=1, keepdim=True) + 1e-10) for f in feats]
        weighted = (state[f"lin{k}.model.1.weight"] * (unit[0] - unit[1]) ** 2).sum(1)  # (B, H, W)
        total += weighted.mean((1, 2))
    return total


def crops() -> tuple[torch.Tensor, torch.Tensor]:
    """Two real 48x48 crops of Set5 and noisy copies of them."""
    clean = torch.stack([read_image(SET5 / name).rgb[:, 40:88, 40:88] for name in ("baby.png", "bird.png")])
    torch.manual_seed(1)
    return clean, (clean + 0.05 * torch.randn_like(clean)).clamp(0, 1)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_is_its_definition(tmp_path: Path, net: str):
    path = random_weights(tmp_path, net)
    model, state = load_lpips(path), torch.load(path, weights_only=True)
    clean, noisy = crops()
    with torch.no_grad():
        torch.testing.assert_close(model(clean, noisy), definition(state, clean, noisy, net), rtol=1e-4, atol=1e-7)
        assert torch.equal(model(clean, clean), torch.zeros(2))


def test_bad_weights_files_are_named(tmp_path: Path):
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"other.pth: expected a saved lpips.LPIPS"):
        load_lpips(tmp_path / "other.pth")
    state = torch.load(random_weights(tmp_path, "alex"), weights_only=True)
    del state["net.slice3.6.weight"]
    torch.save(state, tmp_path / "cut.pth")
    with pytest.raises(ValueError, match="cut.pth .alex.: missing net.slice3.6.weight"):
        load_lpips(tmp_path / "cut.pth")


def test_metrics_scores_lpips_column(tmp_path: Path, capsys):
    weights = random_weights(tmp_path, "alex")
    clean, noisy = crops()
    for folder, images in (("ref", clean), ("out", noisy)):
        write_png(tmp_path / folder / "baby.png", images[0])
    base = ["metrics", str(tmp_path / "out"), "--reference", str(tmp_path / "ref"), "--no-niqe"]
    assert main([*base, "--lpips", str(weights)]) == 0
    header, row, mean = capsys.readouterr().out.splitlines()
    assert header.split() == ["image", "PSNR", "SSIM", "LPIPS"] and float(row.split()[-1]) > 0
    assert main(["metrics", str(tmp_path / "out"), "--lpips", str(weights)]) == 2
    assert "--lpips needs --reference" in capsys.readouterr().err


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_the_reference_package(tmp_path: Path, net: str):
    """The reference implementation with its shipped linear weights and a random backbone (pnet_rand: no
    download), saved, loaded by srcore, compared on real crops and noise."""
    if importlib.util.find_spec("lpips") is None:
        pytest.skip("the lpips package is not installed beside srcore (optional; the definition test above ran)")
    if importlib.util.find_spec("torchvision") is not None and "torchvision" not in sys.modules:
        # torchvision's PyPI wheel is a CUDA build whose C ops do not load with a CPU torch; LPIPS needs none.
        sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    lpips = importlib.import_module("lpips")
    torch.manual_seed(0)
    reference = lpips.LPIPS(net=net, pnet_rand=True, verbose=False).eval()
    torch.save(reference.state_dict(), tmp_path / "ref.pth")
    model = load_lpips(tmp_path / "ref.pth")
    clean, noisy = crops()
    pairs = [(clean, noisy), (clean, clean.flip(-1)), (torch.rand(2, 3, 48, 40), torch.rand(2, 3, 48, 40))]
    with torch.no_grad():
        for a, b in pairs:
            expected = reference(a, b, normalize=True).flatten()
            np.testing.assert_allclose(model(a, b).numpy(), expected.numpy(), rtol=1e-5, atol=1e-7)
