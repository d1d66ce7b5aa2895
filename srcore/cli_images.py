"""What the command line's image commands share: inputs named as files, folders or glob patterns; output
files planned and checked to be writable before any work; the device to run on."""
from __future__ import annotations

import errno
import glob
import os
import sys
import uuid
from pathlib import Path

import torch
from torch import nn

from srcore.checkpoint import rebuild_generator
from srcore.cli import CommandError
from srcore.imageio import IMAGE_SUFFIXES, list_images
from srcore.release import model_path
from srcore.weights import read_spec


def expand_inputs(patterns: list[str]) -> tuple[list[Path], list[str]]:
    """The image files named, held by folders, or matched by glob patterns (for patterns the shell left
    quoted), in order and without repeats; plus one problem per pattern that gave no image."""
    files: dict[Path, None] = {}  # ordered, without repeats
    problems = []
    for text in patterns:
        path = Path(text)
        if path.is_dir():
            try:
                found = list_images(path)
            except FileNotFoundError as error:
                problems.append(str(error))
                continue
        elif path.is_file():
            found = [path]
        elif any(char in text for char in "*?["):
            found = [Path(p) for p in sorted(glob.glob(text)) if Path(p).suffix.lower() in IMAGE_SUFFIXES]
            if not found:
                problems.append(f"{text}: no image file ({'/'.join(IMAGE_SUFFIXES)}) matches this pattern")
        else:
            problems.append(f"{text}: no such file or folder")
            continue
        files.update(dict.fromkeys(found))
    return list(files), problems


def all_inputs(patterns: list[str]) -> list[Path]:
    """expand_inputs where every pattern must give an image: a CommandError naming the first that gives none."""
    files, problems = expand_inputs(patterns)
    if problems:
        raise CommandError(f"{problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    return files


def resolve_device(requested: str | None) -> str:
    """`requested`, or cuda when torch sees one and cpu otherwise; cuda without a CUDA device is a CommandError."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise CommandError("--device cuda, but torch sees no CUDA device (a CPU build of torch, or no GPU); "
                           "use --device cpu")
    return requested or ("cuda" if torch.cuda.is_available() else "cpu")


def writable_folder(folder: Path, flag: str) -> Path:
    """Create `folder` (and parents) and prove it takes a new file, before any work is done; a CommandError
    naming the folder and `flag` (the option that named it) when it does not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CommandError(f"{flag} {folder}: exists and is not a folder") from None
    except OSError as error:
        raise CommandError(f"{flag} {folder}: cannot create this folder ({error.strerror or error})") from None
    probe = folder / f".srcore-write-test.{uuid.uuid4().hex}"
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        reason = "read-only" if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else error.strerror
        raise CommandError(f"{flag} {folder}: cannot write files in this folder ({reason}: {error.strerror})"
                           ) from None
    os.close(descriptor)
    probe.unlink()
    return folder


def load_model(path: str | Path, weights: str, command: str) -> nn.Module:
    """The generator in the weights file at `path` (srcore.weights), saying on stderr which set it took
    when the file holds two."""
    try:
        path = model_path(path)
    except ValueError as error:
        raise CommandError(f"--model {error}") from None
    if not Path(path).exists():
        raise CommandError(f"--model {path}: no such file (give bicubic, srcore:psnr, srcore:gan, or a checkpoint "
                           f"or weights file)")
    spec = read_spec(path, weights)
    if spec.choice is not None:
        other = "raw" if spec.choice == "ema" else "ema"
        print(f"srcore {command}: {path} holds raw and EMA weights; using {spec.choice} (--weights {other} for the "
              f"other)", file=sys.stderr)
    return rebuild_generator(spec.arch, spec.arch_args, spec.weights, f"{path} ({spec.layout} weights)")
