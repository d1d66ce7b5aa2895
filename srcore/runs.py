"""A training run's identity and its resumable state, kept outside DVC's outputs.

A run is identified by a dict (recipe, params, runtime numerics, data digests, the code's import closure;
see srcore.recipes). Its state lives in `<root>/<stage>/<key>/`, key = a hash of that dict: `checkpoint.pt`
(srcore.engine.TrainState) and `live/`, the dvclive logs while the run trains. DVC sees neither: a stage's
declared outputs are only what it produces (the model, its metrics and curves), written when the run ends,
so DVC's cache and run-cache restore any experiment that already ran without training, and switching
experiments never clobbers another run's state. A stage re-run with the same identity finds its own
checkpoint and resumes; any other identity gets a folder of its own and starts at step 0.

Continuing on purpose (`extend: true` in a training group): a run may start from the latest checkpoint of
an earlier run that differs from it only in its number of steps (see `predecessor` and srcore.engine.fit).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from dvclive import Live

from srcore.atomic import write_text
from srcore.checkpoint import load_checkpoint, save_checkpoint

KEEP_RUNS = 8  # state folders kept per stage (the most recently written); older ones are removed


def canonical(run: dict[str, Any]) -> str:
    """A run identity as JSON with sorted keys: tuples and lists alike, as a run.json index holds it."""
    return json.dumps(run, sort_keys=True, default=str)


def run_key(run: dict[str, Any]) -> str:
    """A short, stable name for a run identity (sha256 of its canonical JSON)."""
    return hashlib.sha256(canonical(run).encode()).hexdigest()[:16]


class RunStore:
    """The resumable state of one run: <root>/<stage>/<key>/checkpoint.pt and its dvclive logs in live/."""

    def __init__(self, root: str | Path, stage: str, run: dict[str, Any]):
        self.run = run
        self.dir = Path(root) / stage / run_key(run)
        self.checkpoint = self.dir / "checkpoint.pt"
        self.live_dir = self.dir / "live"

    def load(self) -> dict[str, Any] | None:
        """The checkpoint of this very run, or None (none yet, or a folder of another run by hash collision)."""
        if not self.checkpoint.is_file():
            return None
        state = load_checkpoint(self.checkpoint)
        return state if canonical(state.get("run")) == canonical(self.run) else None

    def resume_step(self) -> int | None:
        state = self.load()
        return None if state is None else state["step"]

    def save(self, checkpoint: dict[str, Any]) -> None:
        save_checkpoint(self.checkpoint, checkpoint)
        # An index for `predecessor`, which must not load every checkpoint to read its identity.
        write_text(self.dir / "run.json", canonical({"run": self.run, "step": checkpoint["step"]}))
        prune(self.dir.parent, keep=KEEP_RUNS)


def apart_from_length(run: dict[str, Any]) -> dict[str, Any]:
    """A run identity without what an extension changes: its number of steps, the extend flag, its base."""
    settings = {k: v for k, v in run["settings"].items() if k not in ("steps", "extend")}
    return json.loads(canonical({**{k: v for k, v in run.items() if k != "extends"}, "settings": settings}))


def predecessor(root: str | Path, stage: str, run: dict[str, Any]) -> RunStore | None:
    """The run to extend into `run`: of the runs of `stage` under `root` that differ from it only in their
    number of steps, the one whose checkpoint is furthest along and still short of run's steps."""
    best, best_step = None, -1
    for index in (Path(root) / stage).glob("*/run.json"):
        entry = json.loads(index.read_text())
        if (apart_from_length(entry["run"]) == apart_from_length(run)
                and best_step < entry["step"] < run["settings"]["steps"]):
            best, best_step = entry["run"], entry["step"]
    if best is None:
        return None
    store = RunStore(root, stage, best)
    return store if store.resume_step() == best_step else None  # the index and the checkpoint agree


def prune(stage_dir: Path, keep: int) -> None:
    """Remove all but the `keep` most recently written run folders of a stage."""
    runs = sorted((d for d in stage_dir.iterdir() if d.is_dir()),
                  key=lambda d: (d / "checkpoint.pt").stat().st_mtime if (d / "checkpoint.pt").exists() else 0)
    for old in runs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def open_live(store: RunStore, main: bool = True, base: RunStore | None = None):
    """The dvclive logger of a run, writing into the run's own live/ folder: a resumed run continues its
    curves without the rows logged after its checkpoint; an extension of `base` starts from base's curves;
    a fresh run starts fresh curves. Processes other than rank 0 (main=False) log nothing: they get a
    context yielding None."""
    if not main:
        return contextlib.nullcontext()
    resume_at = store.resume_step()
    if resume_at is None and base is not None:
        shutil.rmtree(store.live_dir, ignore_errors=True)
        shutil.copytree(base.live_dir, store.live_dir)
        resume_at = base.resume_step()
    if resume_at is None:
        shutil.rmtree(store.live_dir, ignore_errors=True)
    else:
        trim_live_logs(store.live_dir, resume_at)
    return Live(str(store.live_dir), resume=resume_at is not None, save_dvc_exp=False, dvcyaml=False, report=None)


def trim_live_logs(live_dir: Path, step: int) -> None:
    """Drop dvclive metric rows after `step`: a run killed after its last checkpoint had logged steps that
    the resumed run logs again (and may have left a row half written)."""
    for tsv in (Path(live_dir) / "plots" / "metrics").rglob("*.tsv"):
        header, *rows = tsv.read_text().splitlines(keepends=True)
        whole = [row for row in rows if row.endswith("\n") and row.count("\t") == header.count("\t")]
        tsv.write_text(header + "".join(row for row in whole if int(row.split("\t", 1)[0]) <= step))


def publish_live(store: RunStore, dest: Path) -> None:
    """Copy the run's finished logs to `dest` (the stage's declared metrics and plots), replacing what was
    there only once the copy is complete."""
    dest = Path(dest)
    staged = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    shutil.copytree(store.live_dir, staged)
    old = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.old")
    if dest.exists():
        dest.rename(old)
    staged.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
