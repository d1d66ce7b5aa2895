"""The GAN recipe: the step's loss composition and detach semantics, its contract (no update from a
non-finite loss), exact resume, and what makes another run."""
from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from srcore.checkpoint import load_checkpoint
from srcore.config import load_params, merged, params_group
from srcore.data import TrainingImages
from srcore.engine import Loop, train
from srcore.losses import discriminator_loss, feature_matching_loss, generator_loss
from srcore.models import build_generator
from srcore.recipes import data_digests, gan
from srcore.runs import RunStore
from srcore.settings import CommonSettings, GanSettings, Runtime
from tiny_data import tiny_images, tiny_val

ROOT = Path(__file__).resolve().parents[1]
PARAMS = merged(load_params(ROOT / "params.yaml"), {
    "common": {"seed": 0, "scale": 2},
    "runtime": {"precision": "fp32", "channels_last": False, "kernels": "torch"},
    "gan": {"steps": 4, "batch_size": 2, "discriminator_args": {"num_feat": 4, "num_dense": 8}, "milestones": [2],
            "log_every": 1, "val_every": 2, "ckpt_every": 2}})
COMMON = params_group(PARAMS, CommonSettings, "common")
RUNTIME = params_group(PARAMS, Runtime, "runtime")
SETTINGS = params_group(PARAMS, GanSettings, "gan")


def recipe(settings: GanSettings = SETTINGS, seed: int = 0, init: str = "psnr-a", bank: TrainingImages | None = None):
    """The GAN recipe on a tiny EDSR drawn with `seed` (standing for the PSNR model of digest `init`)."""
    torch.manual_seed(seed)
    generator = build_generator("edsr", scale=2, num_feat=8, num_block=1)
    return gan.build(settings, COMMON, RUNTIME, data=data_digests(bank or tiny_images(), tiny_val()),
                     generator=generator, init_digest=init, code="test")


def run(root: Path, bank: TrainingImages | None = None, seed: int = 0, settings: GanSettings = SETTINGS):
    made = recipe(settings, seed, bank=bank)
    return train(made, bank or tiny_images(), tiny_val(), Loop.of(settings), RUNTIME, scale=2,
                 store=RunStore(root, made.name, made.run))


def weights(state) -> list[torch.Tensor]:
    """Every parameter of every network (BN running statistics move in any training-mode forward)."""
    return [p.detach().clone() for net in state.networks.values() for p in net.parameters()]


@pytest.mark.parametrize("kind", ["ragan", "vanilla"])
def test_step_updates_both_nets_and_reports_finite_terms(kind: str):
    made = recipe(replace(SETTINGS, adversarial=kind))
    g0, d0 = (copy.deepcopy(made.state.networks[n].state_dict()) for n in ("generator", "discriminator"))
    metrics = made.step(made.state, *tiny_images().batch(0, 2, augment=False))
    assert set(metrics) == {"g/total", "g/pixel", "g/perceptual", "g/adversarial", "d/loss", "d/real", "d/fake"}
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert metrics["g/total"] == pytest.approx(1e-2 * metrics["g/pixel"] + metrics["g/perceptual"]
                                               + 5e-3 * metrics["g/adversarial"], rel=1e-5)
    for before, net in ((g0, made.state.generator), (d0, made.state.networks["discriminator"])):
        assert any(not torch.equal(a, b) for a, b in zip(before.values(), net.state_dict().values()))


def test_generator_update_sees_only_its_own_loss():
    """With adversarial and perceptual weights 0, G's update is exactly a pixel-loss Adam step: D's update,
    in the same step, leaves G alone (it trains on G's output detached)."""
    made = recipe(replace(SETTINGS, adversarial_weight=0.0, perceptual_weight=0.0, lr_g=1e-3))
    reference = copy.deepcopy(made.state.generator)
    lq, hr = tiny_images().batch(0, 2, augment=False)
    made.step(made.state, lq, hr)
    opt_ref = torch.optim.Adam(reference.parameters(), 1e-3, betas=(0.9, 0.99))
    (1e-2 * torch.nn.functional.l1_loss(reference(lq), hr)).backward()
    opt_ref.step()
    for a, b in zip(reference.state_dict().values(), made.state.generator.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def textbook_step(generator, discriminator, opt_g, opt_d, lq, hr, settings: GanSettings) -> None:
    """The GAN step as the papers and BasicSR write it, D run separately for each loss: G's loss with D frozen
    and D(hr) without a gradient, then D's loss on D(hr) and D(G(lq).detach()), then both updates."""
    discriminator.requires_grad_(False)
    sr = generator(lq)
    with torch.no_grad():
        real_logits, real_features = discriminator(hr, return_features=True)
    fake_logits, fake_features = discriminator(sr, return_features=True)
    perceptual = feature_matching_loss(real_features, fake_features)
    g_loss = (settings.pixel_weight * torch.nn.functional.l1_loss(sr, hr) + settings.perceptual_weight * perceptual
              + settings.adversarial_weight * generator_loss(settings.adversarial, real_logits, fake_logits))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    discriminator.requires_grad_(True)
    d_loss = discriminator_loss(settings.adversarial, discriminator(hr), discriminator(sr.detach()))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_g.step()
    opt_d.step()


@pytest.mark.parametrize("kind", ["ragan", "vanilla"])
def test_step_runs_d_once_per_batch_and_updates_as_the_textbook_step(kind: str):
    """One D pass over the real and one over the fake batch serve both losses (the textbook step runs D four
    times): each network's parameters end where the textbook step puts them, within float rounding."""
    settings = replace(SETTINGS, adversarial=kind, adversarial_weight=0.5, lr_g=1e-3, lr_d=1e-3)
    made = recipe(settings)
    before = weights(made.state)
    nets = {name: copy.deepcopy(net) for name, net in made.state.networks.items()}
    opts = {name: torch.optim.Adam(net.parameters(), 1e-3, betas=(0.9, 0.99)) for name, net in nets.items()}
    lq, hr = tiny_images().batch(0, 2, augment=False)
    textbook_step(nets["generator"], nets["discriminator"], opts["generator"], opts["discriminator"], lq, hr, settings)

    passes = []
    made.state.networks["discriminator"].register_forward_pre_hook(lambda module, args: passes.append(args[0].shape))
    made.step(made.state, lq, hr)
    assert len(passes) == 2
    after = weights(made.state)
    assert all(not torch.equal(a, b) for a, b in zip(before, after))  # every parameter moved
    textbook = [p.detach() for net in nets.values() for p in net.parameters()]
    for ours, theirs in zip(after, textbook, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_non_finite_loss_updates_neither_network():
    """The engine's contract: every loss is checked before any update. (D's loss on an Inf HR batch is NaN;
    G must not have been updated by then.)"""
    made = recipe()
    before = weights(made.state)
    lq, hr = tiny_images().batch(0, 2, augment=False)
    with pytest.raises(FloatingPointError, match=r"^g/total = .*d/loss = "):
        made.step(made.state, lq, hr * float("inf"))
    assert all(torch.equal(a, b) for a, b in zip(before, weights(made.state)))


def test_interrupted_run_resumes_to_identical_weights(tmp_path: Path):
    straight = run(tmp_path / "a")

    class Crash(TrainingImages):
        def batch(self, step, size, augment, part=(0, 1)):
            if step == 3:
                raise KeyboardInterrupt  # stands in for a kill after the step-2 checkpoint
            return super().batch(step, size, augment, part)

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", tiny_images(cls=Crash))
    resumed = run(tmp_path / "b", seed=7)  # fresh D drawn differently: every part must come from the checkpoint
    for a, b in zip(weights(straight), weights(resumed)):
        assert torch.equal(a, b)
    discriminators = (state.networks["discriminator"].state_dict().values() for state in (straight, resumed))
    assert all(torch.equal(a, b) for a, b in zip(*discriminators))  # BN statistics too
    for a, b in zip(straight.ema.module.state_dict().values(), resumed.ema.module.state_dict().values()):
        assert torch.equal(a, b)


def test_other_params_or_initial_model_are_other_runs(tmp_path: Path):
    run(tmp_path)
    assert RunStore(tmp_path, "train_gan", recipe().run).resume_step() == 4
    for other in (recipe(replace(SETTINGS, adversarial_weight=1e-2)), recipe(init="psnr-b")):
        assert RunStore(tmp_path, "train_gan", other.run).resume_step() is None


def test_nan_loss_stops_gan_training_naming_step_and_terms(tmp_path: Path):

    class Poisoned(TrainingImages):
        def batch(self, step, size, augment, part=(0, 1)):
            lq, hr = super().batch(step, size, augment, part)
            return (lq, hr * float("inf")) if step == 3 else (lq, hr)

    with pytest.raises(FloatingPointError) as error:
        run(tmp_path, tiny_images(cls=Poisoned))
    message = str(error.value)
    assert message.startswith("train_gan diverged at step 3: g/total = ")
    for term in ("g/pixel", "g/perceptual", "g/adversarial", "d/loss", "d/real", "d/fake"):
        assert f"{term} = " in message
    state = load_checkpoint(RunStore(tmp_path, "train_gan", recipe().run).checkpoint)  # from before the bad batch
    assert state["step"] == 2 and all(torch.isfinite(t).all() for t in state["model"].values())


def test_vgg_perceptual_without_weights_is_refused_by_name():
    with pytest.raises(ValueError, match="gan.vgg_weights"):
        replace(SETTINGS, perceptual="vgg", vgg_weights="")
