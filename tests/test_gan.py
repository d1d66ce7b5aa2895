"""GAN fine-tuning: the step's loss composition and detach semantics, exact resume, refused resumes."""
from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from srcore.checkpoint import load_checkpoint, save_checkpoint
from srcore.discriminator import build_discriminator
from srcore.gan import GanSettings, gan_step, make_losses, run_description, train_gan
from srcore.models import build_generator
from srcore.resize import downscale
from srcore.runs import can_resume
from srcore.train import PatchBank, Runtime

RUNTIME = Runtime(precision="fp32", channels_last=False, kernels="torch")
SETTINGS = GanSettings(steps=4, batch_size=2, discriminator_args={"num_feat": 4, "num_dense": 8}, log_every=1,
                       val_every=2, ckpt_every=2)


def tiny_bank(seed: int = 0, n: int = 6) -> PatchBank:
    gen = torch.Generator().manual_seed(seed)
    hr = torch.randint(0, 256, (n, 3, 16, 16), generator=gen, dtype=torch.uint8)
    lr = (downscale(hr.double() / 255, 2) * 255).round().to(torch.uint8)
    return PatchBank(lr, hr, seed)


def nets(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    return build_generator("edsr", scale=2, num_feat=8, num_block=1), build_discriminator("vgg", num_feat=4, num_dense=8)


def init_file(tmp_path: Path, generator: torch.nn.Module) -> Path:
    path = tmp_path / "psnr.pt"
    save_checkpoint(path, {"arch": generator.name, "arch_args": generator.arch_args, "model": generator.state_dict()})
    return path


@pytest.mark.parametrize("kind", ["ragan", "vanilla"])
def test_step_updates_both_nets_and_reports_finite_terms(kind: str):
    generator, discriminator = nets()
    g0, d0 = copy.deepcopy(generator.state_dict()), copy.deepcopy(discriminator.state_dict())
    opt_g = torch.optim.Adam(generator.parameters(), 1e-3)
    opt_d = torch.optim.Adam(discriminator.parameters(), 1e-3)
    lr, hr = tiny_bank().batch(0, 2, augment=False)
    metrics = gan_step(generator, discriminator, opt_g, opt_d, lr, hr,
                       make_losses(replace(SETTINGS, adversarial=kind), "torch", "cpu"), RUNTIME)
    assert set(metrics) == {"g/total", "g/pixel", "g/perceptual", "g/adversarial", "d/loss", "d/real", "d/fake"}
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert metrics["g/total"] == pytest.approx(1e-2 * metrics["g/pixel"] + metrics["g/perceptual"]
                                               + 5e-3 * metrics["g/adversarial"], rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(g0.values(), generator.state_dict().values()))
    assert any(not torch.equal(a, b) for a, b in zip(d0.values(), discriminator.state_dict().values()))


def test_generator_update_sees_only_its_own_loss():
    """With adversarial and perceptual weights 0, G's update is exactly a pixel-loss Adam step: the D step
    that follows leaves G alone (it trains on G's output detached)."""
    generator, discriminator = nets()
    reference = copy.deepcopy(generator)
    settings = replace(SETTINGS, adversarial_weight=0.0, perceptual_weight=0.0)
    opt_g = torch.optim.Adam(generator.parameters(), 1e-3)
    lr, hr = tiny_bank().batch(0, 2, augment=False)
    gan_step(generator, discriminator, opt_g, torch.optim.Adam(discriminator.parameters(), 1e-3), lr, hr,
             make_losses(settings, "torch", "cpu"), RUNTIME)
    opt_ref = torch.optim.Adam(reference.parameters(), 1e-3)
    (1e-2 * torch.nn.functional.l1_loss(reference(lr), hr)).backward()
    opt_ref.step()
    for a, b in zip(reference.state_dict().values(), generator.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_interrupted_run_resumes_to_identical_weights(tmp_path: Path):
    generator, discriminator = nets()
    init = init_file(tmp_path, generator)
    straight = train_gan(generator, discriminator, tiny_bank(), tiny_bank(1), SETTINGS, RUNTIME, scale=2, init=init,
                         checkpoint=tmp_path / "a.ckpt")

    class Crash(PatchBank):
        def batch(self, step, size, augment, part=(0, 1)):
            if step == 3:
                raise KeyboardInterrupt  # stands in for a kill after the step-2 checkpoint
            return super().batch(step, size, augment, part)

    bank = tiny_bank()
    with pytest.raises(KeyboardInterrupt):
        train_gan(*nets(), Crash(bank.lr, bank.hr, 0), tiny_bank(1), SETTINGS, RUNTIME, scale=2, init=init,
                  checkpoint=tmp_path / "b.ckpt")
    assert load_checkpoint(tmp_path / "b.ckpt")["step"] == 2
    resumed = train_gan(*nets(seed=7), tiny_bank(), tiny_bank(1), SETTINGS, RUNTIME, scale=2, init=init,
                        checkpoint=tmp_path / "b.ckpt")
    for a, b in zip(straight.module.state_dict().values(), resumed.module.state_dict().values()):
        assert torch.equal(a, b)


def test_other_params_or_initial_model_do_not_resume(tmp_path: Path):
    generator, discriminator = nets()
    init = init_file(tmp_path, generator)
    train_gan(generator, discriminator, tiny_bank(), tiny_bank(1), SETTINGS, RUNTIME, scale=2, init=init,
              checkpoint=tmp_path / "c.ckpt")
    assert can_resume(tmp_path / "c.ckpt", run_description(SETTINGS, 2, init, tiny_bank(), tiny_bank(1), RUNTIME))
    other = replace(SETTINGS, adversarial_weight=1e-2)
    assert not can_resume(tmp_path / "c.ckpt", run_description(other, 2, init, tiny_bank(), tiny_bank(1), RUNTIME))
    init_file(tmp_path, nets(seed=1)[0])  # a retrained PSNR model at the same path
    assert not can_resume(tmp_path / "c.ckpt", run_description(SETTINGS, 2, init, tiny_bank(), tiny_bank(1), RUNTIME))


def test_nan_loss_stops_gan_training_naming_step_and_terms(tmp_path: Path):
    generator, discriminator = nets()
    init = init_file(tmp_path, generator)
    bank = tiny_bank()

    class Poisoned(PatchBank):
        def batch(self, step, size, augment, part=(0, 1)):
            lr, hr = super().batch(step, size, augment, part)
            return (lr, hr * float("inf")) if step == 3 else (lr, hr)

    with pytest.raises(FloatingPointError) as error:
        train_gan(generator, discriminator, Poisoned(bank.lr, bank.hr, 0), tiny_bank(1), SETTINGS, RUNTIME, scale=2,
                  init=init, checkpoint=tmp_path / "n.ckpt")
    message = str(error.value)
    assert message.startswith("train_gan diverged at step 3: g/total = ")
    for term in ("g/pixel", "g/perceptual", "g/adversarial", "d/loss", "d/real", "d/fake"):
        assert f"{term} = " in message
    state = load_checkpoint(tmp_path / "n.ckpt")  # the step-2 checkpoint, from before the bad batch
    assert state["step"] == 2 and all(torch.isfinite(t).all() for t in state["model"].values())


def test_vgg_perceptual_without_weights_is_refused_by_name():
    with pytest.raises(ValueError, match="gan.vgg_weights"):
        GanSettings(perceptual="vgg")
