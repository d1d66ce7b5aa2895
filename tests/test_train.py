"""Pretraining loop and checkpoints: determinism, exact resume, the divergence guard, unsafe files."""
import pickle
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from srcore.checkpoint import generator_from_checkpoint, load_checkpoint, save_checkpoint
from srcore.models import build_generator
from srcore.resize import downscale
from srcore.runs import can_resume, trim_live_logs
from srcore.train import PatchBank, PretrainSettings, Runtime, pretrain, run_description

RUNTIME = Runtime(precision="fp32", channels_last=False, kernels="torch")
SETTINGS = PretrainSettings(generator="edsr", generator_args={"num_feat": 8, "num_block": 1}, steps=6,
                            batch_size=2, log_every=1, val_every=3, ckpt_every=2)


def tiny_bank(seed: int = 0, n: int = 6) -> PatchBank:
    gen = torch.Generator().manual_seed(seed)
    hr = torch.randint(0, 256, (n, 3, 16, 16), generator=gen, dtype=torch.uint8)
    lr = (downscale(hr.double() / 255, 2) * 255).round().to(torch.uint8)
    return PatchBank(lr, hr, seed)


def fresh_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_generator("edsr", scale=2, num_feat=8, num_block=1)


def test_batches_are_a_function_of_seed_and_step_and_stay_protocol_pairs():
    bank = tiny_bank()
    lr_a, hr_a = bank.batch(5, 4, augment=True)
    lr_b, hr_b = bank.batch(5, 4, augment=True)
    assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)
    assert not torch.equal(bank.batch(6, 4, augment=True)[1], hr_a)
    flipped = 0
    for step in range(16):  # every augmented pair is still LR == MATLAB uint8 bicubic of HR, exactly
        lr, hr = bank.batch(step, 2, augment=True)
        assert torch.allclose(downscale(hr.double(), 2), lr.double(), atol=1e-6)
        flipped += not torch.equal(hr, bank.batch(step, 2, augment=False)[1])
    assert flipped > 8  # and augmentation does happen (3 of 4 draws flip something)


def test_interrupted_run_resumes_to_identical_weights(tmp_path: Path):
    straight = pretrain(fresh_model(), tiny_bank(), tiny_bank(1), SETTINGS, RUNTIME, scale=2,
                        checkpoint=tmp_path / "a.ckpt")

    class Crash(PatchBank):
        def batch(self, step, size, augment, part=(0, 1)):
            if step == 3:
                raise KeyboardInterrupt  # stands in for a kill after the step-2 checkpoint
            return super().batch(step, size, augment, part)

    bank = tiny_bank()
    with pytest.raises(KeyboardInterrupt):
        pretrain(fresh_model(), Crash(bank.lr, bank.hr, 0), tiny_bank(1), SETTINGS, RUNTIME, scale=2,
                 checkpoint=tmp_path / "b.ckpt")
    assert load_checkpoint(tmp_path / "b.ckpt")["step"] == 2
    torch.manual_seed(123)  # resuming must not depend on the global RNG the new process starts with
    resumed = pretrain(build_generator("edsr", scale=2, num_feat=8, num_block=1), tiny_bank(), tiny_bank(1),
                       SETTINGS, RUNTIME, scale=2, checkpoint=tmp_path / "b.ckpt")
    for a, b in zip(straight.module.state_dict().values(), resumed.module.state_dict().values()):
        assert torch.equal(a, b)


def test_changed_params_or_data_do_not_resume(tmp_path: Path):
    pretrain(fresh_model(), tiny_bank(), tiny_bank(1), SETTINGS, RUNTIME, scale=2, checkpoint=tmp_path / "c")
    assert can_resume(tmp_path / "c", run_description(SETTINGS, 2, tiny_bank(), tiny_bank(1), RUNTIME))
    assert not can_resume(tmp_path / "c", run_description(replace(SETTINGS, lr=1e-3), 2, tiny_bank(), tiny_bank(1), RUNTIME))
    other = tiny_bank()
    other.hr[0, 0, 0, 0] ^= 1  # one patch differs by one grey level
    assert not can_resume(tmp_path / "c", run_description(SETTINGS, 2, other, tiny_bank(1), RUNTIME))


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path: Path):
    bank = tiny_bank()
    hr = bank.hr.clone()

    class Poisoned(PatchBank):
        def batch(self, step, size, augment, part=(0, 1)):
            lr, hr = super().batch(step, size, augment, part)
            return (lr * float("nan"), hr) if step == 4 else (lr, hr)

    with pytest.raises(FloatingPointError, match=r"pretrain diverged at step 4: train/loss = nan; the last good checkpoint is kept"):
        pretrain(fresh_model(), Poisoned(bank.lr, hr, 0), tiny_bank(1), SETTINGS, RUNTIME, scale=2,
                 checkpoint=tmp_path / "d")
    state = load_checkpoint(tmp_path / "d")
    assert state["step"] == 4 and all(torch.isfinite(t).all() for t in state["model"].values())


def test_non_finite_weights_never_overwrite_the_last_good_checkpoint(tmp_path: Path):
    class Blowup(torch.optim.Adam):  # an update that turns one weight into inf, with a finite loss before it
        def step(self, closure=None):
            super().step(closure)
            if self.state[self.param_groups[0]["params"][0]]["step"] == 4:
                with torch.no_grad():
                    self.param_groups[0]["params"][0].view(-1)[0] = float("inf")

    original = torch.optim.Adam
    torch.optim.Adam = Blowup
    try:
        with pytest.raises(FloatingPointError, match=r"pretrain diverged at step 4: non-finite weights in "):
            pretrain(fresh_model(), tiny_bank(), tiny_bank(1), SETTINGS, RUNTIME, scale=2, checkpoint=tmp_path / "w")
    finally:
        torch.optim.Adam = original
    state = load_checkpoint(tmp_path / "w")
    assert state["step"] == 2 and all(torch.isfinite(t).all() for t in state["model"].values())


def test_runtime_numerics_are_part_of_the_run(tmp_path: Path):
    """bf16 and fp32, or 1 and 2 processes, compute different numbers: neither resumes the other's run."""
    pretrain(fresh_model(), tiny_bank(), tiny_bank(1), SETTINGS, RUNTIME, scale=2, checkpoint=tmp_path / "r")
    run = run_description(SETTINGS, 2, tiny_bank(), tiny_bank(1), RUNTIME)
    assert can_resume(tmp_path / "r", run)
    assert can_resume(tmp_path / "r", run_description(SETTINGS, 2, tiny_bank(), tiny_bank(1), replace(RUNTIME, threads=1)))
    for other in ({"precision": "bf16"}, {"channels_last": True}, {"device": "meta"}):
        assert not can_resume(tmp_path / "r", run_description(SETTINGS, 2, tiny_bank(), tiny_bank(1),
                                                              replace(RUNTIME, **other)))
    assert not can_resume(tmp_path / "r", run_description(SETTINGS, 2, tiny_bank(), tiny_bank(1), RUNTIME, world=2))


def test_batch_slices_of_all_ranks_make_the_one_process_batch():
    bank = tiny_bank()
    lr, hr = bank.batch(7, 6, augment=True)
    parts = [bank.batch(7, 6, augment=True, part=(rank, 3)) for rank in range(3)]
    assert [p[0].shape[0] for p in parts] == [2, 2, 2]
    assert torch.equal(torch.cat([p[0] for p in parts]), lr) and torch.equal(torch.cat([p[1] for p in parts]), hr)


def test_generator_rebuilds_from_checkpoint_alone(tmp_path: Path):
    model = fresh_model().eval()
    save_checkpoint(tmp_path / "g.pt", {"arch": model.name, "arch_args": model.arch_args,
                                        "model": model.state_dict()})
    rebuilt = generator_from_checkpoint(tmp_path / "g.pt", expect_scale=2)
    x = torch.rand(1, 3, 5, 6)
    assert torch.equal(model(x), rebuilt(x))
    with pytest.raises(ValueError, match="x2 model, expected x4"):
        generator_from_checkpoint(tmp_path / "g.pt", expect_scale=4)


class Payload:
    def __reduce__(self):
        return (Path.touch, (Path(__file__).parent / "PWNED",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_is_refused_without_running(tmp_path: Path):
    marker = Path(__file__).parent / "PWNED"
    bad = tmp_path / "evil.pt"
    with open(bad, "wb") as f:
        pickle.dump({"arch": "edsr", "arch_args": {}, "model": Payload()}, f)
    torch.save({"arch": "edsr", "arch_args": {}, "model": Payload()}, tmp_path / "evil2.pt")
    for path in (bad, tmp_path / "evil2.pt"):
        with pytest.raises(ValueError, match="could not be read safely"):
            load_checkpoint(path)
    assert not marker.exists()


def test_trim_live_logs_drops_rows_a_resumed_run_logs_again(tmp_path: Path):
    tsv = tmp_path / "plots" / "metrics" / "train" / "loss.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("step\tloss\n50\t0.3\n100\t0.2\n150\t0.1\n1")  # killed while writing step 200
    trim_live_logs(tmp_path, 100)
    assert tsv.read_text() == "step\tloss\n50\t0.3\n100\t0.2\n"


def test_a_checkpoint_of_other_code_is_not_resumed(tmp_path: Path, monkeypatch):
    """DVC re-runs pretrain when the library changes; the finished run of the old code must not be reused."""
    pretrain(fresh_model(), tiny_bank(), tiny_bank(1), SETTINGS, RUNTIME, scale=2, checkpoint=tmp_path / "d")
    assert can_resume(tmp_path / "d", run_description(SETTINGS, 2, tiny_bank(), tiny_bank(1), RUNTIME))
    monkeypatch.setattr("srcore.train.code_fingerprint", lambda: "edited library")
    assert not can_resume(tmp_path / "d", run_description(SETTINGS, 2, tiny_bank(), tiny_bank(1), RUNTIME))


def test_patch_bank_refuses_a_file_of_another_scale(tmp_path: Path):
    from PIL import Image
    from srcore.patches import write_patches

    image = tmp_path / "a.png"
    Image.fromarray(torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8).numpy()).save(image)
    write_patches([image], tmp_path / "train.h5", scale=2, patch_size=16, stride=16, seed=0)
    assert len(PatchBank.from_h5(tmp_path / "train.h5", 0, scale=2)) == 4
    with pytest.raises(ValueError, match=r"train.h5.*scale 2, this run uses scale 4"):
        PatchBank.from_h5(tmp_path / "train.h5", 0, scale=4)
