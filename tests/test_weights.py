"""Foreign weight layouts land in srcore's generators tensor by tensor; unknown ones fail with what was expected.

Each test builds a tiny srcore generator with random values in every tensor (biases too, so a bias mapped
to the wrong conv shows), renames its state dict into a foreign layout by hand, saves it, loads it back
with load_generator and checks every tensor and the output.
"""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from PIL import Image as PILImage

from srcore.imageio import write_png
from srcore.models import DIV2K_RGB_MEAN, build_generator
from srcore.weights import load_generator, read_spec

RANGE = 255.0  # both EDSR codebases run on [0, 255] pixels


def random_model(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_generator(name, **kwargs).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.1 * torch.randn_like(p))
    return model


def rrdb(scale: int = 4) -> torch.nn.Module:
    return random_model("rrdb", scale=scale, num_feat=8, num_block=2, num_grow_ch=4)


def edsr(scale: int = 4) -> torch.nn.Module:
    return random_model("edsr", scale=scale, num_feat=8, num_block=3)


def to_esrgan(state: dict) -> dict:
    """srcore rrdb -> ESRGAN's RRDBNet_arch.py names."""
    top = {"conv_first": "conv_first", "conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2",
           "conv_hr": "HRconv", "conv_last": "conv_last"}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "body":  # body.N.rdbK.convI.P
            out[f"RRDB_trunk.{parts[1]}.RDB{parts[2][3:]}.{parts[3]}.{parts[4]}"] = value
        else:
            out[f"{top[parts[0]]}.{parts[1]}"] = value
    return out


def to_esrgan_seq(state: dict, num_block: int, ups: int) -> dict:
    """srcore rrdb -> ESRGAN's first flat Sequential: model.0, model.1.sub.N.RDBK.convI.0, model.3, ..."""
    top = {"conv_first": "model.0", "conv_body": f"model.1.sub.{num_block}", "conv_up1": "model.3",
           "conv_up2": "model.6", "conv_hr": f"model.{3 * ups + 2}", "conv_last": f"model.{3 * ups + 4}"}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "body":
            out[f"model.1.sub.{parts[1]}.RDB{parts[2][3:]}.{parts[3]}.0.{parts[4]}"] = value
        else:
            out[f"{top[parts[0]]}.{parts[1]}"] = value
    return out


def to_edsr_pytorch(state: dict, num_block: int) -> dict:
    """srcore edsr -> EDSR-PyTorch names, biases on its [0, 255] scale, with its MeanShift convs."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        value = value * RANGE if parts[-1] == "bias" else value
        if parts[0] == "body":  # body.N.convI.P
            out[f"body.{parts[1]}.body.{0 if parts[2] == 'conv1' else 2}.{parts[3]}"] = value
        elif parts[0] == "upsample":  # upsample.K.conv.P
            out[f"tail.0.{2 * int(parts[1])}.{parts[3]}"] = value
        else:
            name = {"conv_first": "head.0", "conv_body": f"body.{num_block}", "conv_last": "tail.1"}[parts[0]]
            out[f"{name}.{parts[1]}"] = value
    mean = torch.tensor(DIV2K_RGB_MEAN)
    for name, sign in (("sub_mean", -1), ("add_mean", 1)):
        out[f"{name}.weight"] = torch.eye(3).view(3, 3, 1, 1)
        out[f"{name}.bias"] = sign * RANGE * mean
    return out


def edsr_pytorch_forward(state: dict, x: torch.Tensor, num_block: int, steps: list[int]) -> torch.Tensor:
    """EDSR-PyTorch's forward (res_scale 1, rgb_range 255) written from its layers: x (B, 3, H, W) in [0, 1]."""
    def conv(name: str, h: torch.Tensor) -> torch.Tensor:
        weight = state[f"{name}.weight"]
        return F.conv2d(h, weight, state[f"{name}.bias"], padding=weight.shape[-1] // 2)

    head = conv("head.0", conv("sub_mean", x * RANGE))
    res = head
    for n in range(num_block):
        res = res + conv(f"body.{n}.body.2", F.relu(conv(f"body.{n}.body.0", res)))
    res = conv(f"body.{num_block}", res) + head
    for k, factor in enumerate(steps):
        res = F.pixel_shuffle(conv(f"tail.0.{2 * k}", res), factor)
    return conv("add_mean", conv("tail.1", res)) / RANGE


def assert_same_model(loaded: torch.nn.Module, model: torch.nn.Module, atol: float = 0.0) -> None:
    assert loaded.name == model.name and loaded.arch_args == model.arch_args
    expected = model.state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, expected[key], atol=atol, rtol=0, msg=lambda m: f"{key}: {m}")
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("scale", [4, 2])
def test_esrgan_names(tmp_path: Path, scale: int):
    model = rrdb(scale)
    torch.save(to_esrgan(model.state_dict()), tmp_path / "RRDB_ESRGAN.pth")
    assert_same_model(load_generator(tmp_path / "RRDB_ESRGAN.pth"), model)


@pytest.mark.parametrize("scale,ups", [(4, 2), (2, 1)])
def test_esrgan_first_release_sequential_names(tmp_path: Path, scale: int, ups: int):
    model = rrdb(scale)
    state = to_esrgan_seq(model.state_dict(), num_block=2, ups=ups)
    assert ("model.10.weight" in state) == (scale == 4)  # the x4 file's known last conv
    torch.save(state, tmp_path / "old.pth")
    assert_same_model(load_generator(tmp_path / "old.pth"), model)


def test_basicsr_rrdbnet_reads_the_set_asked_for(tmp_path: Path):
    ema, other = rrdb(), random_model("rrdb", scale=4, num_feat=8, num_block=2, num_grow_ch=4)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    torch.save({"params": other.state_dict(), "params_ema": ema.state_dict()}, tmp_path / "net_g.pth")
    assert_same_model(load_generator(tmp_path / "net_g.pth"), ema)
    assert_same_model(load_generator(tmp_path / "net_g.pth", weights="raw"), other)
    assert read_spec(tmp_path / "net_g.pth", "raw").choice == "raw"
    torch.save({"params": other.state_dict()}, tmp_path / "params_only.pth")
    assert_same_model(load_generator(tmp_path / "params_only.pth"), other)
    assert read_spec(tmp_path / "params_only.pth").choice is None


def test_training_checkpoint_raw_or_ema_is_an_explicit_choice(tmp_path: Path):
    """A training checkpoint holds raw `model` and `ema` weights: EMA unless raw is asked for, and the
    choice is recorded (peers read such a file's raw `model`; srcore names what it took)."""
    raw, ema = rrdb(), random_model("rrdb", scale=4, num_feat=8, num_block=2, num_grow_ch=4)
    with torch.no_grad():
        for p in ema.parameters():
            p.mul_(-1.0)
    state = {"arch": "rrdb", "arch_args": raw.arch_args, "model": raw.state_dict(), "ema": ema.state_dict()}
    torch.save(state, tmp_path / "train.pt")
    assert_same_model(load_generator(tmp_path / "train.pt"), ema)
    assert_same_model(load_generator(tmp_path / "train.pt", weights="raw"), raw)
    spec = read_spec(tmp_path / "train.pt", "raw")
    assert spec.choice == "raw" and set(spec.sets) == {"raw", "ema"}
    with pytest.raises(ValueError, match="weights must be one of ema, raw"):
        load_generator(tmp_path / "train.pt", weights="params")


@pytest.mark.parametrize("name, write, what", [
    ("photo.png", lambda p: write_png(p, torch.rand(3, 4, 4)), "is a PNG image, not model weights"),
    ("photo.jpg", lambda p: PILImage.new("RGB", (4, 4)).save(p), "is a JPEG image, not model weights"),
    ("photo.webp", lambda p: PILImage.new("RGB", (4, 4)).save(p), "is a WebP image, not model weights"),
    ("model.onnx", lambda p: p.write_bytes(b"\x08\x08\x12\x07pytorch"),
     "is an ONNX graph .srcore runs PyTorch weights"),
])
def test_files_that_are_not_weights_are_named_as_what_they_are(tmp_path: Path, name, write, what):
    write(tmp_path / name)
    with pytest.raises(ValueError, match=what):
        load_generator(tmp_path / name)


def test_basicsr_edsr_biases_move_to_unit_range(tmp_path: Path):
    model = edsr(4)
    state = {}
    for key, value in model.state_dict().items():
        value = value * RANGE if key.endswith("bias") else value
        key = key.replace("conv_body", "conv_after_body")
        if key.startswith("upsample."):
            step = int(key.split(".")[1])
            key = f"upsample.{2 * step}.{key.split('.')[-1]}"
        state[key] = value
    torch.save({"params": state}, tmp_path / "EDSR_Mx4.pth")
    assert_same_model(load_generator(tmp_path / "EDSR_Mx4.pth"), model, atol=1e-7)


@pytest.mark.parametrize("scale,steps", [(4, [2, 2]), (3, [3]), (2, [2])])
def test_edsr_pytorch_matches_its_own_forward(tmp_path: Path, scale: int, steps: list[int]):
    """The loaded model computes what EDSR-PyTorch computes on [0, 255] pixels, not only the same tensors."""
    model = edsr(scale)
    state = to_edsr_pytorch(model.state_dict(), num_block=3)
    torch.save(state, tmp_path / "edsr_baseline.pt")
    loaded = load_generator(tmp_path / "edsr_baseline.pt")
    assert_same_model(loaded, model, atol=1e-7)
    x = torch.rand(2, 3, 7, 6)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), edsr_pytorch_forward(state, x, 3, steps), atol=1e-4, rtol=0)


def test_safetensors_and_dataparallel_prefix(tmp_path: Path):
    model = rrdb()
    save_file({f"module.{k}": v.contiguous() for k, v in to_esrgan(model.state_dict()).items()},
              tmp_path / "esrgan.safetensors")
    assert_same_model(load_generator(tmp_path / "esrgan.safetensors"), model)


def test_unknown_layout_lists_what_was_expected(tmp_path: Path):
    torch.save({"encoder.weight": torch.zeros(2, 2), "decoder.bias": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError) as error:
        load_generator(tmp_path / "other.pth")
    message = str(error.value)
    assert "unrecognised weight layout" in message and "encoder.weight" in message
    for key in ("RRDB_trunk.0.RDB1.conv1.weight", "body.0.rdb1.conv1.weight", "conv_after_body.weight",
                "tail.1.weight", "model.1.sub.0.RDB1.conv1.0.weight"):
        assert key in message


def test_refusals_name_the_reason(tmp_path: Path):
    unshuffled = rrdb().state_dict()
    unshuffled["conv_first.weight"] = torch.zeros(8, 12, 3, 3)  # BasicSR's x2 RRDBNet sees 4x3 channels
    torch.save(unshuffled, tmp_path / "x2.pth")
    with pytest.raises(ValueError, match="pixel-unshuffled"):
        load_generator(tmp_path / "x2.pth")
    other_mean = to_edsr_pytorch(edsr().state_dict(), num_block=3)
    other_mean["sub_mean.bias"] = -RANGE * torch.tensor([0.5, 0.4, 0.3])
    torch.save(other_mean, tmp_path / "mean.pt")
    with pytest.raises(ValueError, match="DIV2K mean"):
        load_generator(tmp_path / "mean.pt")
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")  # a pickled module, not tensors
    with pytest.raises(ValueError, match="could not be read safely"):
        load_generator(tmp_path / "pickled.pt")
    with pytest.raises(FileNotFoundError):
        load_generator(tmp_path / "missing.pth")
