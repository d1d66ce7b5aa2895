"""srcore's checkpoint files: a generator rebuilds from the file alone; a pickled payload is refused unrun."""
import pickle
from pathlib import Path

import pytest
import torch

from srcore.checkpoint import load_checkpoint, save_checkpoint, save_generator
from srcore.models import build_generator
from srcore.weights import load_generator


def test_generator_rebuilds_from_checkpoint_alone(tmp_path: Path):
    torch.manual_seed(0)
    model = build_generator("edsr", scale=2, num_feat=8, num_block=1).eval()
    save_generator(tmp_path / "g.pt", model, step=3)
    rebuilt = load_generator(tmp_path / "g.pt", expect_scale=2)
    x = torch.rand(1, 3, 5, 6)
    assert torch.equal(model(x), rebuilt(x)) and load_checkpoint(tmp_path / "g.pt")["step"] == 3
    with pytest.raises(ValueError, match="x2 model, expected x4"):
        load_generator(tmp_path / "g.pt", expect_scale=4)


def test_a_training_state_loads_its_ema_unless_asked_for_the_raw_weights(tmp_path: Path):
    torch.manual_seed(0)
    raw, ema = (build_generator("edsr", scale=2, num_feat=8, num_block=1) for _ in range(2))
    save_checkpoint(tmp_path / "s.pt", {"arch": raw.name, "arch_args": raw.arch_args, "model": raw.state_dict(),
                                        "ema": ema.state_dict()})
    x = torch.rand(1, 3, 5, 6)
    assert torch.equal(load_generator(tmp_path / "s.pt")(x), ema.eval()(x))
    assert torch.equal(load_generator(tmp_path / "s.pt", weights="raw")(x), raw.eval()(x))


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
