"""The code's shape, as ARCHITECTURE.md promises it: short functions, modules of one concept.

A newcomer reads a module in one sitting and a function on one screen. The limits are the
ones issue 16 set: no module over 500 lines and no function over 80 lines in the core
(``coder/``), the evaluation (``eval/``) and the review app (``review_tui/``). Tests and
benchmarks are not held to them.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

FOLDERS = ("coder", "eval", "review_tui", "schemas")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def python_files() -> list[Path]:
    return [path for folder in FOLDERS for path in sorted((REPO / folder).rglob("*.py"))]


def test_no_module_is_over_500_lines() -> None:
    long = {
        path.relative_to(REPO).as_posix(): lines
        for path in python_files()
        if (lines := path.read_text(encoding="utf-8").count("\n")) > MAX_MODULE_LINES
    }
    assert not long, f"split these modules by concept (lines): {long}"


def test_no_function_is_over_80_lines() -> None:
    long = {}
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(REPO).as_posix()}:{node.lineno} {node.name}"] = lines
    assert not long, f"shorten these functions (lines): {long}"


def test_the_shape_check_sees_a_long_function(tmp_path: Path) -> None:
    """The walk above counts nested and async functions, so it cannot pass vacuously."""
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    tree = ast.parse(f"async def outer():\n{body}\n")
    (node,) = [n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef)]
    assert node.end_lineno is not None
    assert node.end_lineno - node.lineno + 1 == MAX_FUNCTION_LINES + 1
