"""The layout reads in one pass: every module says what it is in its first docstring line, no file is over ~300
lines and no function over ~40, outside the Triton kernels (one file per op, as Liger-Kernel keeps them).

`make layout` prints the module list with those first lines and line counts.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE_LINES, MAX_FUNCTION_LINES = 320, 45  # "about 300" and "about 40" (STYLE.md)


def modules() -> list[Path]:
    return sorted([*ROOT.glob("srcore/**/*.py"), *ROOT.glob("stages/*.py"), *ROOT.glob("kernels/*.py")])


def first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_module_says_what_it_is_and_stays_short(path: Path):
    assert first_line(path), "no module docstring"
    if path.parent.name == "kernels":
        return
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_FILE_LINES, f"{lines} lines"
    tree = ast.parse(path.read_text())
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"


if __name__ == "__main__":
    for module in modules():
        print(f"{len(module.read_text().splitlines()):4d}  {module.relative_to(ROOT).as_posix():28s} {first_line(module)}")
