"""A training run's identity, checkpoint and logs: what makes resuming an interrupted stage safe.

A run is described by a dict (params, runtime numerics, data and code fingerprints; see
srcore.train.run_description and srcore.gan.run_description) stored in every checkpoint it writes. A
stage re-run after an interruption resumes only a checkpoint whose description equals its own, and
continues its dvclive curves from that checkpoint's step.
"""
from __future__ import annotations

import contextlib
import hashlib
import shutil
from pathlib import Path
from typing import Any

from dvclive import Live

import kernels
import srcore
from srcore.checkpoint import load_checkpoint


def code_fingerprint() -> str:
    """sha256 of the library's sources (srcore and kernels). DVC re-runs a training stage when its code
    changes; a finished checkpoint of the old code must then not be "resumed" into the new run."""
    digest = hashlib.sha256()
    for package in (srcore, kernels):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{package.__name__}/{path.relative_to(root)}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def checkpoint_of_run(path: Path, run: dict[str, Any], say: bool = False) -> dict[str, Any] | None:
    """The checkpoint at `path` when it belongs to this very run, else None (`say`: print why not)."""
    if not path.is_file():
        return None
    state = load_checkpoint(path)
    if state.get("run") == run:
        return state
    if say:
        print(f"{path}: checkpoint of a different run (params, runtime, data or code changed): starting from step 0")
    return None


def resumable_step(path: Path, run: dict[str, Any]) -> int | None:
    """The step of the checkpoint at `path` when it belongs to this very run, else None."""
    state = checkpoint_of_run(path, run)
    return None if state is None else state["step"]


def can_resume(path: Path, run: dict[str, Any]) -> bool:
    return resumable_step(path, run) is not None


def open_live(live_dir: Path, resume_at: int | None, main: bool = True):
    """The dvclive logger of a training stage: a resumed run (resume_at = its checkpoint's step) continues
    its curves, without the rows logged after that checkpoint; a fresh run starts fresh curves. Processes
    other than rank 0 (main=False) log nothing: they get a context yielding None."""
    if not main:
        return contextlib.nullcontext()
    if resume_at is None:
        shutil.rmtree(live_dir, ignore_errors=True)
    else:
        trim_live_logs(live_dir, resume_at)
    return Live(str(live_dir), resume=resume_at is not None, save_dvc_exp=False, dvcyaml=False, report=None)


def trim_live_logs(live_dir: Path, step: int) -> None:
    """Drop dvclive metric rows after `step`: a run killed after its last checkpoint had logged steps that
    the resumed run logs again (and may have left a row half written)."""
    for tsv in (Path(live_dir) / "plots" / "metrics").rglob("*.tsv"):
        header, *rows = tsv.read_text().splitlines(keepends=True)
        whole = [row for row in rows if row.endswith("\n") and row.count("\t") == header.count("\t")]
        tsv.write_text(header + "".join(row for row in whole if int(row.split("\t", 1)[0]) <= step))
