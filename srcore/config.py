"""Reading `params.yaml` into typed, frozen dataclasses: unknown, missing and ill-typed keys are errors naming the key.

The schemas live in srcore.settings. Stage scripts turn one params group into one of them at the edge; the
library then takes plain arguments, never a params dict.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader reading floats as YAML 1.2 does: `1e-4` is a float (YAML 1.1 wants `1.0e-4`
    and PyYAML would return the string '1e-4')."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+][0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=Loader)


def load_params(path: str | Path) -> dict[str, Any]:
    """Read params.yaml into a dict (an empty file is an error)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"params file {path} does not exist")
    try:
        params = parse_yaml(Path(path).read_text())
    except yaml.YAMLError as error:
        mark, problem = getattr(error, "problem_mark", None), getattr(error, "problem", None) or "syntax error"
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ValueError(f"{where}: not valid YAML: {problem}") from error
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping of params groups, got {type(params).__name__}")
    return params


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of params `base` with `overrides` applied key by key, recursing into mappings (as `dvc exp run
    -S group.key=value` edits one key of a group and leaves the rest)."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def params_group(params: dict[str, Any], cls: type[T], name: str) -> T:
    """The params group `name` as dataclass `cls` (see from_dict); a missing group is an error naming it."""
    if name not in params:
        raise ValueError(f"params: no group {name!r} (groups: {', '.join(map(str, params))}); "
                         f"expected a mapping of {cls.__name__} fields")
    return from_dict(cls, params[name], name)


def check_kwargs(where: str, given: dict[str, Any], target: Callable[..., Any], set_elsewhere: tuple[str, ...]
                 ) -> None:
    """Raise ValueError naming `where` unless every key of `given` is a keyword argument of `target`
    (a class or function) that is not in `set_elsewhere` (arguments the caller passes itself)."""
    valid = [n for n in inspect.signature(target).parameters if n not in set_elsewhere]
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} for {target.__name__}; "
                         f"valid: {', '.join(valid)}")


def from_dict(cls: type[T], values: dict[str, Any], where: str) -> T:
    """Build dataclass `cls` from `values`, checking every key and type; `where` names the group in errors."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        if not matches(value, hints[name]):
            raise ValueError(f"{where}.{name}: expected {type_name(hints[name])}, got {value!r}")
        kwargs[name] = tuple(value) if isinstance(value, list) else value
    missing = [n for n, f in fields.items() if n not in values and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
    return cls(**kwargs)


def matches(value: Any, hint: Any) -> bool:
    """Does a YAML value fit a type hint? bool is not an int here, an int is a valid float."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(matches(v, a) for v, a in zip(value, args))
    if origin is dict:
        return isinstance(value, dict) and all(matches(k, args[0]) and matches(v, args[1]) for k, v in value.items())
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    return isinstance(value, hint)


def type_name(hint: Any) -> str:
    """A type hint as an error message shows what is allowed: `one of 2, 3, 4`, `tuple[float, ...]`."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(hint))
    if origin is not None:
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
