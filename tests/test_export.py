"""Exported models compute what the PyTorch model computes: ONNX at any H, W (checked with onnxruntime)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from srcore.export import BicubicUp, export_onnx, export_safetensors
from srcore.weights import read_spec
from srcore.models import build_generator
from srcore.resize import imresize


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(7, 5), (2, 9), (16, 16)])
def test_bicubic_up_is_matlab_imresize(scale: int, size: tuple[int, int]):
    """The fixed-op bicubic used in ONNX graphs equals srcore.resize.imresize, borders included."""
    x = torch.rand(2, 3, *size)
    torch.testing.assert_close(BicubicUp(scale)(x), imresize(x, scale=float(scale)), atol=1e-6, rtol=0)


def test_onnx_matches_pytorch_at_two_sizes(tmp_path: Path):
    """EDSR with the bicubic global residual and its output mean: both parts the wrapper rewrites."""
    ort = pytest.importorskip("onnxruntime")  # the `onnx` extra; installed by the `test` extra
    torch.manual_seed(0)
    model = build_generator("edsr", scale=3, num_feat=4, num_block=1, global_residual=True).eval()
    export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 9, 13), (2, 3, 20, 6)]:
        x = torch.rand(*shape)
        (sr,) = session.run(["sr"], {"lq": x.numpy()})
        with torch.no_grad():
            expected = model(x).numpy()
        assert sr.shape == (shape[0], 3, 3 * shape[2], 3 * shape[3])
        np.testing.assert_allclose(sr, expected, atol=1e-4, rtol=0)


def test_onnx_export_prints_no_torchvision_notes(tmp_path: Path, capsys, caplog, monkeypatch):
    """torch's exporter logs "torchvision is not installed. Skipping torchvision::nms" (and three more)
    where torchvision is absent, as in srcore's own environment; srcore's graphs hold no torchvision op."""
    import importlib.util

    pytest.importorskip("onnxscript")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "torchvision" else real(name, *args))
    export_onnx(build_generator("edsr", scale=2, num_feat=4, num_block=1), tmp_path / "m.onnx")
    assert "torchvision" not in capsys.readouterr().err + caplog.text
    assert (tmp_path / "m.onnx").stat().st_size > 0


def test_safetensors_export_gives_the_same_bytes_every_time(tmp_path: Path):
    """safetensors orders the metadata map differently from call to call; the file must not (a model DVC or
    git tracks, e.g. the shipped ones, would otherwise change on every run)."""
    torch.manual_seed(0)
    model = build_generator("edsr", scale=2, num_feat=4, num_block=1)
    card = {"card_version": 1, "training": {"steps": 3}, "scores": {"val": {"psnr": 30.0}}}
    files = [tmp_path / f"{i}.safetensors" for i in range(6)]
    for path in files:
        export_safetensors(model, path, card)
    assert len({path.read_bytes() for path in files}) == 1
    spec = read_spec(files[0])  # still a file safetensors reads, metadata and all
    assert spec.card == card and spec.arch == "edsr"
    assert all(torch.equal(spec.weights[k], v) for k, v in model.state_dict().items())
