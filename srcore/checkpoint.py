"""srcore's checkpoint schema: a generator file describes itself, and a training state extends it.

Files are plain dicts written with `torch.save` (atomically) and read with `srcore.files.safe_load`
(`torch.load(weights_only=True)`), so a file carrying a pickled payload is refused instead of executed.
A generator file (what `pretrain`, `train_gan` and `interpolate` write) holds:
    arch, arch_args        GENERATORS name and constructor arguments (srcore.models)
    model, ema             weights, and the EMA weights when training kept them (loaders prefer the EMA)
    step                   optimizer steps taken
    card                   the model card of a trained generator (srcore.modelcard), optional
A training state (srcore.engine.TrainState, the resumable checkpoint) is a generator file plus the other
networks, optimizers, schedulers, RNG state and the run's identity; see TrainState.to_dict.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from srcore.atomic import atomic_path
from srcore.files import safe_load
from srcore.models import build_generator


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: a crash mid-write never leaves a truncated checkpoint."""
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def save_generator(path: str | Path, model: nn.Module, step: int, card: dict[str, Any] | None = None) -> None:
    """A generator alone (weights on the CPU, contiguous), rebuildable with srcore.weights.load_generator;
    `card` (srcore.modelcard) is stored under "card" when given."""
    model = model.to("cpu", memory_format=torch.contiguous_format)
    state = {"arch": model.name, "arch_args": model.arch_args, "model": model.state_dict(), "step": step}
    save_checkpoint(path, state if card is None else {**state, "card": card})


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read an srcore checkpoint safely (see safe_load); errors name the file."""
    return check_checkpoint(safe_load(path, "checkpoint"), path)


def check_checkpoint(state: Any, path: str | Path) -> dict[str, Any]:
    """`state` itself when it has the keys and types of a generator file, else a ValueError naming `path`."""
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} is not an srcore checkpoint (holds a {type(state).__name__})")
    missing = [key for key in ("arch", "arch_args", "model") if key not in state]
    if missing:
        raise ValueError(f"checkpoint {path} is not an srcore checkpoint (missing {', '.join(missing)})")
    if not all(isinstance(state[key], kind) for key, kind in (("arch", str), ("arch_args", dict), ("model", dict))):
        kinds = [type(state[key]).__name__ for key in ("arch", "arch_args", "model")]
        raise ValueError(f"checkpoint {path} is not an srcore checkpoint: expected arch str, arch_args dict and "
                         f"model dict, got {', '.join(kinds)}")
    return state


def generator_weights(state: dict[str, Any], use_ema: bool = True) -> dict[str, torch.Tensor]:
    """The weights a generator is rebuilt with: the EMA weights when the checkpoint kept them."""
    return state["ema"] if use_ema and state.get("ema") is not None else state["model"]


def few(keys: list[str], shown: int = 5) -> str:
    more = f" (+{len(keys) - shown} more)" if len(keys) > shown else ""
    return (", ".join(keys[:shown]) or "none") + more


def state_dict_mismatch(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], a_name: str, b_name: str
                        ) -> str | None:
    """What keeps two state dicts from matching tensor for tensor (missing/extra keys, a shape), or None;
    `a_name` and `b_name` say which is which in the message."""
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        return f"weight keys differ: only in {a_name}: {few(only_a)}; only in {b_name}: {few(only_b)}"
    for key, tensor in a.items():
        if tensor.shape != b[key].shape:
            return f"weight {key} has shape {tuple(tensor.shape)} in {a_name} but {tuple(b[key].shape)} in {b_name}"
    return None


def rebuild_generator(arch: str, arch_args: dict[str, Any], weights: dict[str, torch.Tensor], source: str,
                      kernels: str = "torch") -> nn.Module:
    """The generator `arch`(**arch_args) holding `weights`, in eval mode; errors start with `source`."""
    try:
        model = build_generator(arch, **arch_args, kernels=kernels)
    except (TypeError, ValueError) as error:  # unknown arch name, unknown or bad constructor argument
        raise ValueError(f"{source}: cannot build generator {arch!r} with {arch_args}: {error}") from error
    mismatch = state_dict_mismatch(model.state_dict(), weights, f"{arch} {arch_args}", "the file")
    if mismatch:
        raise ValueError(f"{source}: its weights do not fit the architecture it names: {mismatch}")
    model.load_state_dict(weights)
    return model.eval()
