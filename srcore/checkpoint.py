"""Checkpoints that describe themselves: a generator is rebuilt from the file alone.

A checkpoint is a plain dict saved with `torch.save` and read back with `torch.load(weights_only=True)`,
so a file carrying a pickled payload is refused instead of executed. Keys:
    arch, arch_args        GENERATORS name and constructor arguments (srcore.models)
    model, ema             weights, and the EMA weights when training kept them
    optimizer, scheduler   state dicts, to resume
    step                   optimizer steps taken
    rng                    torch CPU RNG state (and CUDA's when present), to resume bit for bit
    run                    a dict describing the run (its params), to refuse resuming a different run
    card                   the model card of a trained generator (srcore.modelcard), optional
Extra keys (e.g. a discriminator) may be added by the training loop that owns them.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srcore.atomic import atomic_path
from srcore.models import build_generator


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: a crash mid-write never leaves a truncated checkpoint."""
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def save_generator(path: str | Path, model: nn.Module, step: int, card: dict[str, Any] | None = None) -> None:
    """A generator alone (weights on the CPU, contiguous), rebuildable with generator_from_checkpoint;
    `card` (srcore.modelcard) is stored under "card" when given."""
    model = model.to("cpu", memory_format=torch.contiguous_format)
    state = {"arch": model.name, "arch_args": model.arch_args, "model": model.state_dict(), "step": step}
    save_checkpoint(path, state if card is None else {**state, "card": card})


def safe_load(path: str | Path, what: str) -> Any:
    """torch.load with weights_only=True (a file carrying pickled code is refused, not run), on the CPU;
    errors name `what` and the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - re-raised, naming the file
        # weights_only refuses pickled code with UnpicklingError; truncated or non-torch files give
        # RuntimeError, EOFError, and from the weights-only unpickler also IndexError, KeyError...
        raise ValueError(f"{what} {path} could not be read safely: {load_failure(error)}") from error


def load_failure(error: Exception) -> str:
    """One line saying why torch.load failed. torch's own message for a refused pickle is a page long and
    suggests weights_only=False, which would run the code: only what the weights-only unpickler refused
    is kept (e.g. "Unsupported global: GLOBAL getattr", "Unsupported operand 149")."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()  # drop terminal colour codes
    _, found, refused = text.partition("WeightsUnpickler error:")
    if found and refused.strip():
        detail = refused.strip().splitlines()[0].split(" was not ")[0].split(". ")[0]
        return (f"torch.load(weights_only=True) refused it ({detail}): it holds pickled code or objects other "
                f"than tensors and plain containers; nothing in it was run")
    first = text.splitlines()[0].split(". ")[0] if text else "no message"  # torch appends paragraphs of advice
    return f"not a complete torch checkpoint file ({type(error).__name__}: {first})"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read an srcore checkpoint safely (see safe_load); errors name the file."""
    state = safe_load(path, "checkpoint")
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


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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


def generator_from_checkpoint(path: str | Path, *, use_ema: bool = True, kernels: str = "torch",
                              expect_scale: int | None = None) -> nn.Module:
    """Rebuild the generator a checkpoint describes, with its EMA weights when it has them.

    Errors name the file: another scale than `expect_scale`, an arch or arch_args that build no generator,
    weights that do not fit the architecture the file names."""
    state = load_checkpoint(path)
    arch, arch_args = state["arch"], state["arch_args"]
    if expect_scale is not None and arch_args.get("scale") != expect_scale:
        raise ValueError(f"checkpoint {path} is a x{arch_args.get('scale')} model, expected x{expect_scale}")
    return rebuild_generator(arch, arch_args, generator_weights(state, use_ema), f"checkpoint {path}", kernels)


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
