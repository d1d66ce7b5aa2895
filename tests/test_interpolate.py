"""Network interpolation: exact endpoints and midpoint, EMA weights, refusals, file naming, the DVC stage."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srcore.checkpoint import load_checkpoint, save_checkpoint
from srcore.weights import load_generator
from srcore.interpolate import alpha_filenames, interpolate_checkpoints, interpolate_weights
from srcore.models import build_generator

ROOT = Path(__file__).resolve().parents[1]


def tiny(arch: str = "edsr", seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    args = {"scale": 2, "num_feat": 8, "num_block": 1, **kwargs}
    return build_generator(arch, **args)


def save(path: Path, model: torch.nn.Module, ema: torch.nn.Module | None = None) -> Path:
    state = {"arch": model.name, "arch_args": model.arch_args, "model": model.state_dict(), "step": 1}
    if ema is not None:
        state["ema"] = ema.state_dict()
    save_checkpoint(path, state)
    return path


@pytest.fixture
def pair(tmp_path):
    """A PSNR and a GAN checkpoint of the same tiny EDSR, with different weights."""
    psnr, gan = tiny(seed=0), tiny(seed=1)
    return save(tmp_path / "psnr.pt", psnr), save(tmp_path / "gan.pt", gan), psnr.state_dict(), gan.state_dict()


def test_endpoints_are_exact_and_midpoint_is_the_mean(pair, tmp_path):
    psnr_path, gan_path, psnr, gan = pair
    paths = interpolate_checkpoints(psnr_path, gan_path, [0.0, 0.5, 1.0], tmp_path / "out")
    assert [p.name for p in paths] == ["alpha_0.00.pt", "alpha_0.50.pt", "alpha_1.00.pt"]
    at0, at_half, at1 = (load_checkpoint(p)["model"] for p in paths)
    for key in psnr:
        assert at0[key].dtype == psnr[key].dtype
        assert torch.equal(at0[key], psnr[key]) and torch.equal(at1[key], gan[key]), key
        mean = ((psnr[key].double() + gan[key].double()) / 2).float()
        assert torch.equal(at_half[key], mean), key
    assert not torch.equal(at_half["conv_first.weight"], psnr["conv_first.weight"])


def test_interpolated_checkpoint_describes_itself_and_runs(pair, tmp_path):
    psnr_path, gan_path, _, _ = pair
    [path] = interpolate_checkpoints(psnr_path, gan_path, [0.25], tmp_path / "out")
    state = load_checkpoint(path)
    assert state["arch"] == "edsr" and state["arch_args"]["num_feat"] == 8
    assert state["interpolation"] == {"alpha": 0.25, "psnr": str(psnr_path), "gan": str(gan_path)}
    model = load_generator(path, expect_scale=2)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 6, 5))
    assert out.shape == (1, 3, 12, 10) and torch.isfinite(out).all()


def test_batchnorm_counters_are_taken_from_the_gan_model():
    psnr, gan = tiny("srresnet", seed=0, use_bn=True), tiny("srresnet", seed=1, use_bn=True)
    psnr_state, gan_state = psnr.state_dict(), gan.state_dict()
    counters = [k for k in psnr_state if k.endswith("num_batches_tracked")]
    assert counters
    for key in counters:
        psnr_state[key], gan_state[key] = torch.tensor(10), torch.tensor(25)
    mixed = interpolate_weights(psnr_state, gan_state, 0.3)
    assert all(mixed[k].item() == 25 and mixed[k].dtype == torch.int64 for k in counters)


def test_refuses_different_arch_naming_both_files(tmp_path):
    psnr = save(tmp_path / "psnr.pt", tiny("edsr"))
    gan = save(tmp_path / "gan.pt", tiny("srresnet"))
    with pytest.raises(ValueError, match="arch differs: 'edsr' vs 'srresnet'") as error:
        interpolate_checkpoints(psnr, gan, [0.5], tmp_path / "out")
    assert str(psnr) in str(error.value) and str(gan) in str(error.value)
    assert not (tmp_path / "out").exists()


def test_refuses_different_arch_args_naming_both_files(tmp_path):
    psnr = save(tmp_path / "psnr.pt", tiny(num_feat=8))
    gan = save(tmp_path / "gan.pt", tiny(num_feat=16))
    with pytest.raises(ValueError, match="num_feat: 8 vs 16") as error:
        interpolate_checkpoints(psnr, gan, [0.5], tmp_path / "out")
    assert str(psnr) in str(error.value) and str(gan) in str(error.value)


def test_refuses_different_keys_and_shapes(pair, tmp_path):
    psnr_path, gan_path, psnr, gan = pair
    renamed = {("extra." + k if k.startswith("body") else k): v for k, v in gan.items()}
    save_checkpoint(gan_path, {"arch": "edsr", "arch_args": tiny().arch_args, "model": renamed})
    with pytest.raises(ValueError, match=r"only in PSNR: body\.0\.conv1\.bias.*only in GAN: extra\.body") as error:
        interpolate_checkpoints(psnr_path, gan_path, [0.5], tmp_path / "out")
    assert str(psnr_path) in str(error.value) and str(gan_path) in str(error.value)
    reshaped = {**gan, "conv_last.bias": torch.zeros(4)}
    with pytest.raises(ValueError, match=r"conv_last\.bias has shape \(3,\) in PSNR but \(4,\) in GAN"):
        interpolate_weights(psnr, reshaped, 0.5)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_out_of_range_is_an_error(pair, tmp_path, alpha):
    psnr_path, gan_path, psnr, gan = pair
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        interpolate_weights(psnr, gan, alpha)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        interpolate_checkpoints(psnr_path, gan_path, [0.5, alpha], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_file_names_keep_two_decimals_and_refuse_collisions():
    assert alpha_filenames([0.2, 0.25, 1]) == ["alpha_0.20.pt", "alpha_0.25.pt", "alpha_1.00.pt"]
    with pytest.raises(ValueError, match="0.2 and 0.2001 both give the file alpha_0.20.pt"):
        alpha_filenames([0.2, 0.2001])
    with pytest.raises(ValueError, match="at least one"):
        alpha_filenames([])


def test_ema_weights_are_used_when_present(tmp_path):
    psnr_raw, psnr_ema, gan_raw, gan_ema = (tiny(seed=s) for s in range(4))
    psnr = save(tmp_path / "psnr.pt", psnr_raw, ema=psnr_ema)
    gan = save(tmp_path / "gan.pt", gan_raw, ema=gan_ema)
    at0, at1 = (load_checkpoint(p)["model"] for p in interpolate_checkpoints(psnr, gan, [0, 1], tmp_path / "out"))
    for key, value in psnr_ema.state_dict().items():
        assert torch.equal(at0[key], value), key
    for key, value in gan_ema.state_dict().items():
        assert torch.equal(at1[key], value), key


def test_stale_alpha_files_are_removed(pair, tmp_path):
    psnr_path, gan_path, _, _ = pair
    out = tmp_path / "out"
    interpolate_checkpoints(psnr_path, gan_path, [0.0, 0.3, 1.0], out)
    (out / "alpha_0.70.pt.tmp").write_bytes(b"crash leftover")  # older naming
    (out / ".alpha_0.30.pt.0123abcd.tmp").write_bytes(b"crash leftover")  # srcore.atomic's naming
    (out / "notes.txt").write_text("not ours")
    interpolate_checkpoints(psnr_path, gan_path, [0.0, 0.5], out)
    assert sorted(p.name for p in out.iterdir()) == ["alpha_0.00.pt", "alpha_0.50.pt", "notes.txt"]


def test_stage_runs_end_to_end(pair, tmp_path):
    psnr_path, gan_path, _, _ = pair
    params = tmp_path / "params.yaml"
    params.write_text("common: {seed: 0, scale: 2}\ninterpolate:\n  alphas: [0.0, 0.8, 1.0]\n")
    out = tmp_path / "interp"
    result = subprocess.run([sys.executable, "stages/interpolate.py", "--params", str(params),
                             "--psnr", str(psnr_path), "--gan", str(gan_path), "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["alpha_0.00.pt", "alpha_0.80.pt", "alpha_1.00.pt"]
    assert f"wrote {out / 'alpha_0.80.pt'}" in result.stdout
    assert load_checkpoint(out / "alpha_0.80.pt")["interpolation"]["alpha"] == 0.8


def test_stage_rejects_ill_typed_alphas(pair, tmp_path):
    psnr_path, gan_path, _, _ = pair
    params = tmp_path / "params.yaml"
    params.write_text("interpolate:\n  alphas: [0.5, high]\n")
    result = subprocess.run([sys.executable, "stages/interpolate.py", "--params", str(params),
                             "--psnr", str(psnr_path), "--gan", str(gan_path), "--out", str(tmp_path / "o")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr  # one line, no traceback: see srcore.stage
    assert result.stderr.strip() == "interpolate: error: interpolate.alphas: expected tuple[float, ...], got [0.5, 'high']"
