"""Atomic output files: write under a temporary name beside the target, then rename into place.

Every output of the pipeline (HDF5 patches, checkpoints, metrics JSON, PNGs) goes through `atomic_path`,
so a reader (or DVC) never sees half a file: the target is either the complete new file or what it was
before. A failed or interrupted write removes its temporary file; only a hard kill (SIGKILL, power loss)
can leave one, named `.<name>.<random>.tmp` (hidden, and never matching the target's own pattern).
Atomic against crashes, not fsynced against power loss.

The result gets the permission bits a plain `open(path, "w")` would have given it (an existing file's own,
else 0o666 minus the umask), whatever mode the writer created its temporary file with: safetensors, for
one, creates files 0600, which would otherwise leak into every exported model.
"""
from __future__ import annotations

import contextlib
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

TEMPORARY_SUFFIX = ".tmp"


def temporary_name(path: Path) -> Path:
    """A fresh temporary path in the folder of `path` (same file system, so os.replace is atomic)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}{TEMPORARY_SUFFIX}")


def current_umask() -> int:
    """The process's umask. os.umask can only be read by setting it, so it is set back at once."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normal_mode(path: Path) -> int:
    """The permission bits `open(path, "w")` would leave: those of the file already there, else 0o666 & ~umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write the whole output to; on success it replaces `path`.

    The parent folder is created. When the body raises (or is interrupted), the temporary file is removed,
    `path` is left as it was and the exception propagates. Writers that pick a format from the file name
    (Pillow, matplotlib) must be given the format explicitly, as the temporary name ends in .tmp.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    try:
        yield temporary
        if not temporary.is_file():
            raise FileNotFoundError(f"atomic write of {path}: the writer left no file at {temporary}")
        os.chmod(temporary, normal_mode(path))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # a no-op after os.replace


def write_text(path: str | Path, text: str) -> None:
    """`path.write_text(text)`, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)
