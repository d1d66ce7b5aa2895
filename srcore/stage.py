"""What the stage scripts share: one-line errors for bad input, and the training stages' command line.

The library raises ValueError (ImageReadError is one) or FileNotFoundError with a message that names the bad
file or params key and what was expected. A stage that cannot go on prints `<stage>: error: <message>` on
stderr and exits with status 2 (argparse's status for bad arguments). Anything else is a bug and keeps its
traceback. Outputs are written atomically (srcore.atomic), so a stage that stops leaves none half-written.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

# Input problems the user fixes: a missing or unreadable path, a bad value. OSErrors such as a full disk are
# not in this list and keep their traceback.
INPUT_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3  # training's divergence guard (srcore.engine.check_finite_losses) stopped the run


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's `main`; on bad input or divergence print one line and exit with EXIT_BAD_INPUT or
    EXIT_DIVERGED."""
    try:
        main()
    except INPUT_ERRORS as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except FloatingPointError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        sys.exit(EXIT_DIVERGED)


def training_arguments(description: str) -> argparse.ArgumentParser:
    """The command line both training stages share: params, patch files, where runs keep their resumable
    state, and the outputs (the generator and the dvclive folder)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True, help="train.h5 from the prepare stage")
    parser.add_argument("--val", type=Path, required=True, help="val.h5 from the prepare stage")
    parser.add_argument("--runs", type=Path, required=True,
                        help="folder of resumable training states, one per run (not a DVC output)")
    parser.add_argument("--out", type=Path, required=True, help="the trained generator (EMA weights)")
    parser.add_argument("--live", type=Path, required=True, help="dvclive folder, written when the run ends")
    return parser
