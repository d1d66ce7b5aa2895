"""Params groups become frozen typed configs; every bad key or value is an error that names it."""
from dataclasses import FrozenInstanceError, dataclass
from typing import Literal

import pytest

from srcore.config import CommonConfig, from_dict, load_params


@dataclass(frozen=True)
class Example:
    name: str
    rate: float
    steps: int = 10
    kind: Literal["l1", "mse"] = "l1"
    layers: tuple[str, ...] = ()
    weights: dict[str, float] | None = None


def test_valid_group_becomes_frozen_dataclass():
    config = from_dict(Example, {"name": "a", "rate": 1, "layers": ["x", "y"], "weights": {"conv5_4": 1.0}}, "g")
    assert config == Example("a", 1, 10, "l1", ("x", "y"), {"conv5_4": 1.0})
    with pytest.raises(FrozenInstanceError):
        config.rate = 2.0


@pytest.mark.parametrize("values, message", [
    ({"name": "a", "rate": 1.0, "stesp": 3}, r"g: unknown key\(s\) stesp; valid: name, rate"),
    ({"name": "a", "rate": "fast"}, r"g.rate: expected float, got 'fast'"),
    ({"name": "a", "rate": 1.0, "steps": 2.5}, r"g.steps: expected int, got 2.5"),
    ({"name": "a", "rate": 1.0, "steps": True}, r"g.steps: expected int, got True"),
    ({"name": "a", "rate": 1.0, "kind": "huber"}, r"g.kind: expected .*huber"),
    ({"name": "a", "rate": 1.0, "layers": ["x", 3]}, r"g.layers: expected"),
    ({"rate": 1.0}, r"g: missing key\(s\) name"),
])
def test_bad_values_name_the_key(values, message):
    with pytest.raises(ValueError, match=message):
        from_dict(Example, values, "g")


def test_common_scale_is_restricted_to_supported_scales():
    assert from_dict(CommonConfig, {"seed": 0, "scale": 3}, "common").scale == 3
    with pytest.raises(ValueError, match=r"common.scale: expected .*got 5"):
        from_dict(CommonConfig, {"seed": 0, "scale": 5}, "common")


def test_floats_in_exponent_form_are_floats(tmp_path):
    """PyYAML alone reads `1e-4` as the string '1e-4'; params files are read as YAML 1.2 does."""
    path = tmp_path / "params.yaml"
    path.write_text("a: 1e-4\nb: 2.5E+3\nc: 5\nd: '1e-4'\ne: .5\n")
    assert load_params(path) == {"a": 1e-4, "b": 2500.0, "c": 5, "d": "1e-4", "e": 0.5}
