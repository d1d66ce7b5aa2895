"""Params groups become frozen typed configs; every bad key or value is an error that names it; params.yaml is
the one place defaults live."""
import dataclasses
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path
from typing import Literal

import pytest

from srcore import settings
from srcore.config import from_dict, load_params, merged, params_group
from srcore.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[1]
GROUPS = {"common": settings.CommonSettings, "runtime": settings.Runtime, "data": settings.DataSettings,
          "prepare": settings.PrepareSettings,
          "pretrain": settings.PretrainSettings, "gan": settings.GanSettings,
          "interpolate": settings.InterpolateSettings, "evaluate": settings.EvaluateSettings}


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
    assert from_dict(CommonSettings, {"seed": 0, "scale": 3}, "common").scale == 3
    with pytest.raises(ValueError, match=r"common.scale: expected .*got 5"):
        from_dict(CommonSettings, {"seed": 0, "scale": 5}, "common")


def test_params_yaml_is_the_only_place_defaults_live():
    """Every group of params.yaml is a schema of srcore.settings with no default of its own, so a key deleted
    from params.yaml is an error naming it, never a silent other value."""
    params = load_params(ROOT / "params.yaml")
    assert set(params) == set(GROUPS)
    for name, schema in GROUPS.items():
        assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   for f in dataclasses.fields(schema)), name
        params_group(params, schema, name)  # parses
        key = dataclasses.fields(schema)[-1].name
        without = {**params, name: {k: v for k, v in params[name].items() if k != key}}
        with pytest.raises(ValueError, match=rf"^{name}: missing key\(s\) {key}$"):
            params_group(without, schema, name)


def test_merged_overrides_keys_and_keeps_the_rest():
    base = {"pretrain": {"lr": 1.0, "generator_args": {"num_feat": 32, "num_block": 16}}, "common": {"seed": 0}}
    assert merged(base, {"pretrain": {"generator_args": {"num_feat": 8}}}) == {
        "pretrain": {"lr": 1.0, "generator_args": {"num_feat": 8, "num_block": 16}}, "common": {"seed": 0}}
    assert base["pretrain"]["generator_args"]["num_feat"] == 32  # a copy


def test_floats_in_exponent_form_are_floats(tmp_path):
    """PyYAML alone reads `1e-4` as the string '1e-4'; params files are read as YAML 1.2 does."""
    path = tmp_path / "params.yaml"
    path.write_text("a: 1e-4\nb: 2.5E+3\nc: 5\nd: '1e-4'\ne: .5\n")
    assert load_params(path) == {"a": 1e-4, "b": 2500.0, "c": 5, "d": "1e-4", "e": 0.5}
