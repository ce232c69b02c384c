"""What `coder status` and `coder --help` import (issue 16: both start in <= 0.3 s).

The start-up time is the imports, so these tests check the import graph of the real
command in a fresh process (`python -X importtime`), not a time: sqlite-utils (with the
numpy it imports) and the review package's queue, decisions and groups stay out of
`coder status`. The timing itself is benchmarks/bench_cli_startup.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from coder import migrations
from coder.assign import assign, double_coded
from coder.project_file import CURRENT_MIGRATIONS, MIGRATION_SET, MIGRATIONS_TABLE
from schemas import Labels
from tests.review_data import build_project

REPO = Path(__file__).resolve().parents[1]


def import_tree(*args: str) -> tuple[list[tuple[str, int]], subprocess.CompletedProcess[str]]:
    """Run ``coder ARGS`` in a fresh process; its imports as (module, depth), in the order
    ``-X importtime`` prints them (a module after the modules it imported)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "coder", *args],
        capture_output=True, text=True, cwd=REPO,
    )
    tree = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        name = line.split("|")[2]
        tree.append((name.strip(), (len(name) - len(name.lstrip()) - 1) // 2))
    return tree, done


def run_python(script: str) -> None:
    """Run ``script`` in a fresh interpreter (its imports start from nothing); it must pass."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


def importer_of(tree: list[tuple[str, int]], module: str) -> str | None:
    """The module whose import first imported ``module`` (None: imported at top level)."""
    names = [name for name, _ in tree]
    at = names.index(module)
    depth = tree[at][1]
    return next((name for name, level in tree[at + 1:] if level < depth), None)


def reviewed_project(path: Path) -> Path:
    """Proposals, two reviewers with an overlap, an undo and an adjudication."""
    store = build_project(path, 30)
    assign(store, ["ann", "bob"], 0.5, seed=1)
    proposals = store.current_proposals()
    for response_id in sorted(double_coded(store))[:6]:
        stored = proposals[response_id]
        assert stored.proposal is not None
        labels = Labels.from_proposal(stored.proposal)
        for reviewer in ("ann", "bob"):
            store.add_decision(response_id=response_id, reviewer=reviewer, action="accept",
                               labels=labels, proposal_id=stored.id)
    store.close()
    return path


def test_status_imports_neither_sqlite_utils_nor_numpy(tmp_path: Path) -> None:
    db = reviewed_project(tmp_path / "project.db")
    tree, done = import_tree("status", "--db", str(db))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "reviewers:" in done.stdout and "ann" in done.stdout
    modules = {name for name, _ in tree}
    assert "coder.status" in modules and "coder.store" in modules
    assert not {"sqlite_utils", "numpy", "coder.migrations", "coder.project_database"} & modules
    # The review package loads only what status uses (progress, first_item, index).
    assert not {"coder.review.decisions", "coder.review.groups", "coder.review.queue"} & modules
    # The store and its records import the Pydantic models when they first build a
    # record, which status never does; elsewhere they appear in type hints only.
    assert not {"schemas", "pydantic"} & modules, importer_of(tree, "pydantic")


def test_help_imports_neither_the_store_nor_pydantic() -> None:
    tree, done = import_tree("--help")
    assert done.returncode == 0 and "status" in done.stdout
    modules = {name for name, _ in tree}
    assert not {"coder.store", "sqlite_utils", "pydantic", "rich.console"} & modules


def test_writing_and_migrating_still_import_sqlite_utils(tmp_path: Path) -> None:
    """The other side of the lazy store: a command that writes builds the sqlite-utils
    wrapper, and a project short of a migration is migrated on open."""
    db = reviewed_project(tmp_path / "project.db")
    script = (
        "import sys; from coder.store import Store\n"
        f"store = Store({str(db)!r})\n"
        "assert store.count_responses() == 30 and len(store.final_label_rows()) == 6\n"
        "assert 'sqlite_utils' not in sys.modules, 'a read imported sqlite-utils'\n"
        "store.add_decision(response_id='r000000', reviewer='cy', action='skip')\n"
        "assert 'sqlite_utils' in sys.modules and store.count_decisions() == 13\n"
    )
    run_python(script)


def test_the_store_knows_the_migrations_by_name() -> None:
    """A project with CURRENT_MIGRATIONS applied opens without importing the migrations:
    the list must name every migration, in order (add a new one to both)."""
    assert list(CURRENT_MIGRATIONS) == migrations.names()
    assert MIGRATIONS_TABLE == migrations.migrations.migrations_table
    assert MIGRATION_SET == migrations.migrations.name


def test_the_review_package_loads_its_names_on_first_use() -> None:
    script = (
        "import sys, coder.review as review\n"
        "assert 'coder.review.decisions' not in sys.modules\n"
        "from coder.review import ReviewItem, parse_filter\n"
        "assert 'coder.review.decisions' in sys.modules and callable(parse_filter)\n"
        "for name in review.__all__:\n"
        "    assert getattr(review, name) is not None, name\n"
        "import coder.review.progress, coder.review.first_item\n"
        # The two names that are also submodules stay the functions callers call.
        "assert review.progress.__module__ == 'coder.review.progress' and callable(review.progress)\n"
        "assert callable(review.first_item) and set(review.__all__) <= set(dir(review))\n"
        "try:\n"
        "    review.no_such_name\n"
        "except AttributeError as error:\n"
        "    assert 'no_such_name' in str(error)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
    )
    run_python(script)
