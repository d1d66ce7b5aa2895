"""Reading files a user hands us without running anything in them.

Any `.pt`/`.pth` is read with `torch.load(weights_only=True)`: a file carrying a pickled payload is refused
instead of executed, with one line saying why. What the file must contain is the caller's business (see
srcore.checkpoint for srcore's own checkpoints, srcore.weights for other projects' layouts).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

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
