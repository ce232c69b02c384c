"""The layers ARCHITECTURE.md states, checked: where SQL may live, and import contracts.

The import contracts themselves run in CI (`lint-imports`, configured in pyproject.toml);
this file checks the rule import-linter cannot see: SQL statements live in the store
(``coder/store.py``, ``coder/migrations.py``) or in query modules beside it named
``coder/*_queries.py``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import REPO

SQL = re.compile(
    r"\b(select\s+[\w*(].*?\bfrom\s+\w|insert\s+(or\s+\w+\s+)?into\s+\w|update\s+\w+\s+set\b"
    r"|delete\s+from\s+\w)",
    re.IGNORECASE | re.DOTALL,
)
ALLOWED = {"coder/store.py", "coder/migrations.py"}

#: Files that still hold SQL of their own, to move next to the store. The list may only
#: shrink: a new file with SQL fails this test.
NOT_YET_MOVED: set[str] = set()


def sql_literals(path: Path) -> list[int]:
    """Line numbers of string literals in ``path`` that are SQL statements (not docstrings)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and SQL.search(node.value)
    ]


def files_with_sql() -> dict[str, list[int]]:
    found = {}
    for folder in ("coder", "eval", "review_tui", "schemas"):
        for path in sorted((REPO / folder).rglob("*.py")):
            name = path.relative_to(REPO).as_posix()
            if name in ALLOWED or name.endswith("_queries.py"):
                continue
            lines = sql_literals(path)
            if lines:
                found[name] = lines
    return found


def test_sql_lives_in_the_store_or_its_query_modules() -> None:
    found = files_with_sql()
    new = {name: lines for name, lines in found.items() if name not in NOT_YET_MOVED}
    assert not new, f"SQL outside the store (move it to coder/store.py or a *_queries.py): {new}"


def test_the_list_of_files_still_to_move_only_shrinks() -> None:
    moved = NOT_YET_MOVED - set(files_with_sql())
    assert not moved, f"these no longer hold SQL: remove them from NOT_YET_MOVED: {moved}"


def test_the_check_sees_sql() -> None:
    # Guards the checker itself: it must flag a statement and skip a docstring.
    assert SQL.search("select id, text from responses where id = ?")
    assert SQL.search("update models set blob = null where id = ?")
    assert not SQL.search("Select answers in the queue by filter")
