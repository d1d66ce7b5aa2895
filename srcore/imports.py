"""The import closure of a script: every project source file it can run, found by reading, not importing.

A stage's code is its script plus every module of the project's packages (srcore, kernels) that the script
imports, directly or through another module, at module level or inside a function (the kernel modules are
imported lazily). That set is what `dvc.yaml` must list as the stage's code dependencies (a test checks
it) and what a training run's code fingerprint hashes (srcore.runs), so that editing a benchmark or the CLI
neither re-runs a stage nor refuses to resume it, while editing anything the stage runs does both.
Packages' `__init__.py` files count: importing `srcore.models` runs `srcore/__init__.py`.
"""
from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGES = ("srcore", "kernels")


def imported_modules(path: Path, root: Path) -> set[str]:
    """Dotted names of every module `path` imports anywhere (absolute; relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path.relative_to(root)).rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x / from .y import z
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def module_name(relative: Path) -> str:
    """`srcore.models` for srcore/models.py, `srcore` for srcore/__init__.py, the stem for a script."""
    parts = list(relative.with_suffix("").parts)
    if parts[0] not in PACKAGES:
        return relative.stem
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(name: str, root: Path) -> Path | None:
    """The project file of module `name` under `root`, or None (stdlib, third-party, or an attribute)."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def import_closure(script: Path, root: Path) -> list[Path]:
    """`script` and every project module it imports transitively, with their packages' __init__.py; sorted,
    relative to `root` (the repository)."""
    script, root = script.resolve(), root.resolve()
    seen, todo = {script}, [script]
    while todo:
        for name in imported_modules(todo.pop(), root):
            parts = name.split(".")
            packages = [module_file(".".join(parts[:i]), root) for i in range(1, len(parts))]
            for found in [*packages, module_file(name, root)]:
                if found is not None and found not in seen:
                    seen.add(found)
                    todo.append(found)
    return sorted(path.relative_to(root) for path in seen)


def closure_digest(script: Path, root: Path) -> str:
    """sha256 over the names and bytes of `import_closure(script, root)`."""
    digest = hashlib.sha256()
    for relative in import_closure(script, root):
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update((root / relative).read_bytes())
    return digest.hexdigest()


def code_fingerprint(file: str | Path) -> str:
    """closure_digest of a stage script or module, in the project it belongs to (the nearest folder above it
    that holds the srcore package): what a training run's identity records as its code."""
    path = Path(file).resolve()
    root = next(parent for parent in path.parents if (parent / "srcore" / "__init__.py").is_file())
    return closure_digest(path, root)
