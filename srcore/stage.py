"""What the stage scripts share: bad input stops a stage with one line naming it, not a traceback.

The library raises ValueError (ImageReadError is one) or FileNotFoundError with a message that names the bad
file or params key and what was expected. A stage that cannot go on prints `<stage>: error: <message>` on
stderr and exits with status 2 (argparse's status for bad arguments). Anything else is a bug and keeps its
traceback. Outputs are written atomically (srcore.atomic), so a stage that stops leaves none half-written.
"""
from __future__ import annotations

import sys
from collections.abc import Callable

# Input problems the user fixes: a missing or unreadable path, a bad value. OSErrors such as a full disk are
# not in this list and keep their traceback.
INPUT_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3  # training's divergence guard (srcore.train.check_finite_losses) stopped the run


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
