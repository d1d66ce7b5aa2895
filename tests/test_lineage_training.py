"""The pretrain recipe's lineage options: VDSR's adjustable gradient clipping (bounded by theta / current lr),
SGD, a Y model's loss on Y, and multi-scale training on batches of mixed scales from an in-memory source, in
one process and data-parallel."""
from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from srcore.config import load_params, merged, params_group
from srcore.data import PatchBank, TrainingImages
from srcore.engine import Loop, train
from srcore.losses import pixel_loss
from srcore.mixed_scales import MixedScales
from srcore.recipes import pretrain
from srcore.resize import downscale
from srcore.runs import RunStore
from srcore.settings import CommonSettings, PretrainSettings, Runtime
from srcore.ychannel import luma

ROOT = Path(__file__).resolve().parents[1]
PARAMS = merged(load_params(ROOT / "params.yaml"), {
    "common": {"seed": 0, "scale": 2},
    "runtime": {"precision": "fp32", "channels_last": False, "kernels": "torch"},
    "pretrain": {"generator": "vdsr", "loss": "mse", "optimizer": "sgd", "lr": 0.1, "sgd_weight_decay": 0.0, "clip": "norm",
                 "clip_theta": 1e-4, "steps": 6, "batch_size": 2, "log_every": 1, "val_every": 3,
                 "ckpt_every": 3}})
PARAMS["pretrain"]["generator_args"] = {"colour": "y", "num_feat": 8, "num_layers": 4}  # replaced, not merged
COMMON = params_group(PARAMS, CommonSettings, "common")
RUNTIME = params_group(PARAMS, Runtime, "runtime")
SETTINGS = params_group(PARAMS, PretrainSettings, "pretrain")


def pairs(scale: int, seed: int, n: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n random HR images (side x side, side divisible by 2, 3 and 4) and their protocol LR at `scale`."""
    hr = torch.randint(0, 256, (n, 3, side, side), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return (downscale(hr.double() / 255, scale) * 255).round().to(torch.uint8), hr


def bank(scale: int, seed: int = 0, n: int = 4, side: int = 24) -> PatchBank:
    """Validation tiles: `pairs` as a PatchBank."""
    return PatchBank(*pairs(scale, seed, n, side))


def images(scale: int, seed: int = 0, n: int = 4, side: int = 24) -> TrainingImages:
    """Training images: `pairs` in memory, cropped whole (24-px crops of 24-px images)."""
    lq, hr = pairs(scale, seed, n, side)
    return TrainingImages.in_memory(list(hr), list(lq), scale, side, seed=0)


def build(settings: PretrainSettings = SETTINGS, common: CommonSettings = COMMON):
    torch.manual_seed(0)
    return pretrain.build(settings, common, RUNTIME, data={"train": "test", "val": "test"}, code="test")


def unclipped_gradients(model: torch.nn.Module, lq, hr, on_luma: bool) -> list[torch.Tensor]:
    """The gradients of the step's loss, computed on a copy, before any clipping."""
    twin = copy.deepcopy(model)
    sr = twin(lq)
    loss = pixel_loss("mse")(luma(sr), luma(hr)) if on_luma else pixel_loss("mse")(sr, hr)
    loss.backward()
    return [p.grad.clone() for p in twin.parameters()]


def total_norm(tensors: list[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([t.norm() for t in tensors])))


@pytest.mark.parametrize("lr", [0.1, 0.02])
def test_norm_clipping_bounds_the_gradient_norm_by_theta_over_the_current_lr(lr: float):
    made = build()
    optimizer = made.state.optimizers["generator"]
    optimizer.param_groups[0]["lr"] = lr  # as a schedule would have moved it
    lq, hr = images(2).batch(0, 2, False)
    before = [p.detach().clone() for p in made.state.generator.parameters()]
    grads = unclipped_gradients(made.state.generator, lq, hr, on_luma=True)
    terms = made.step(made.state, lq, hr)
    clipped = [p.grad for p in made.state.generator.parameters()]
    bound, norm = SETTINGS.clip_theta / lr, total_norm(grads)
    assert norm > 10 * bound  # the test is about a gradient that needs clipping
    assert terms["train/grad_norm"] == pytest.approx(norm, rel=1e-5)
    assert total_norm(clipped) == pytest.approx(bound, rel=1e-4)
    for c, g in zip(clipped, grads):  # scaled, not turned: the direction is kept
        torch.testing.assert_close(c, g * (bound / norm), rtol=1e-4, atol=1e-12)
    step = [p.detach() - b for p, b in zip(made.state.generator.parameters(), before)]
    assert total_norm(step) == pytest.approx(SETTINGS.clip_theta, rel=1e-4)  # lr * g within theta


def test_value_clipping_bounds_every_component_by_theta_over_lr():
    made = build(replace(SETTINGS, clip="value", clip_theta=1e-3))
    lq, hr = images(2).batch(0, 2, False)
    grads = unclipped_gradients(made.state.generator, lq, hr, on_luma=True)
    made.step(made.state, lq, hr)
    bound = 1e-3 / SETTINGS.lr
    clipped = [p.grad for p in made.state.generator.parameters()]
    assert max(float(g.abs().max()) for g in grads) > bound  # some component needed clipping
    for c, g in zip(clipped, grads):
        torch.testing.assert_close(c, g.clamp(-bound, bound), rtol=1e-5, atol=1e-9)


def test_without_clipping_the_gradients_are_left_alone_and_the_loss_is_on_y():
    made = build(replace(SETTINGS, clip="none"))
    lq, hr = images(2).batch(0, 2, False)
    model = made.state.generator
    with torch.no_grad():
        expected_loss = float(pixel_loss("mse")(luma(model(lq)), luma(hr)))
    grads = unclipped_gradients(model, lq, hr, on_luma=True)
    terms = made.step(made.state, lq, hr)
    assert set(terms) == {"train/loss"} and terms["train/loss"] == pytest.approx(expected_loss, rel=1e-6)
    for p, g in zip(model.parameters(), grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-10)


def test_optimizer_is_the_one_the_settings_name():
    sgd = build().state.optimizers["generator"]
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == SETTINGS.sgd_momentum and sgd.defaults["weight_decay"] == 0.0
    adam = build(replace(SETTINGS, optimizer="adam")).state.optimizers["generator"]
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["betas"] == (0.9, 0.99)


def test_mixed_scales_cycles_its_banks_and_checks_them():
    source = MixedScales({4: images(4), 2: images(2), 3: images(3)})
    assert source.scales == (2, 3, 4)
    for step, (lq, hr) in enumerate(source.batches(0, 6, 2, True)):
        assert hr.shape[-1] == 24 and lq.shape[-1] == 24 // source.scale_of(step) == 24 // (2, 3, 4)[step % 3]
        assert torch.equal(lq, source.sources[source.scale_of(step)].batch(step, 2, True)[0])
    with pytest.raises(ValueError, match=r"the images given for x3 are x2 pairs"):
        MixedScales({3: images(2)})
    other = images(3, seed=1)
    assert MixedScales({2: images(2), 3: other}).digest != MixedScales({2: images(2), 3: images(3)}).digest


def test_mdsr_trains_every_scale_from_batches_of_mixed_scales(tmp_path: Path):
    settings = replace(SETTINGS, generator="mdsr", generator_args={"num_feat": 8, "num_block": 1,
                                                                   "scales": [2, 3, 4]},
                       loss="l1", optimizer="adam", lr=1e-3, clip="none")
    made = build(settings, replace(COMMON, scale=4))
    model = made.state.generator
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    step_fn = made.step
    made = replace(made, step=lambda state, lq, hr: seen.append(hr.shape[-1] // lq.shape[-1]) or
                   step_fn(state, lq, hr))
    source = MixedScales({s: images(s) for s in (2, 3, 4)})
    train(made, source, bank(4, seed=1), Loop.of(settings), RUNTIME, scale=4,
          store=RunStore(tmp_path, "pretrain", made.run))
    assert seen == [2, 3, 4, 2, 3, 4]
    for s in (2, 3, 4):  # every scale's own head was trained, and the shared body too
        for key in (f"pre.x{s}.0.conv1.weight", f"upsample.x{s}.0.conv.weight", "body.0.conv1.weight"):
            assert not torch.equal(model.state_dict()[key], initial[key]), key


MDSR = replace(SETTINGS, generator="mdsr", generator_args={"num_feat": 4, "num_block": 1, "scales": [2, 3, 4]},
               loss="l1", optimizer="adam", lr=1e-3, clip="none")
DDP_WORKER = """
import sys
import torch
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from test_lineage_training import COMMON, MDSR, RUNTIME, images
from srcore.distributed import finish_distributed, init_distributed
from srcore.mixed_scales import MixedScales
from srcore.recipes import pretrain
from dataclasses import replace

_, dist = init_distributed("cpu")
torch.set_num_threads(1)
torch.manual_seed(0)
made = pretrain.build(MDSR, replace(COMMON, scale=4), RUNTIME, data={}, dist=dist, code="test")
source = MixedScales({s: images(s) for s in (2, 3, 4)})
for step in range(4):
    made.step(made.state, *source.batch(step, 2, False, dist.part))
if dist.main:
    torch.save(made.state.generator.state_dict(), sys.argv[3])
finish_distributed(dist)
"""


def test_mdsr_trains_data_parallel_on_mixed_scales_like_one_process(tmp_path: Path):
    """Under torchrun a step at one scale leaves the other heads without gradients: DDP must expect that
    (before, the second step stopped with DDP's "Expected to have finished reduction")."""
    (tmp_path / "worker.py").write_text(DDP_WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(tmp_path / "worker.py"), str(ROOT), str(ROOT / "tests"), str(tmp_path / "ddp.pt")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, textwrap.shorten(done.stderr[-3000:], 3000)
    made = build(MDSR, replace(COMMON, scale=4))
    source = MixedScales({s: images(s) for s in (2, 3, 4)})
    for step in range(4):
        made.step(made.state, *source.batch(step, 2, False))
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    for key, value in made.state.generator.state_dict().items():
        torch.testing.assert_close(ddp[key], value, rtol=1e-4, atol=1e-6, msg=lambda m: f"{key}: {m}")
