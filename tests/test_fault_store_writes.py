"""Issue 15 fault targets for the project file itself: a full disk and kill -9 while
`coder import` writes. Either way the project holds what it held before, and the next run
imports everything once.

A full disk is SQLite's own SQLITE_FULL, raised for real by capping the file's pages
(``PRAGMA max_page_count``) on the connection coder opens: no mock of SQLite.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import coder.store
from coder.cli import cli
from coder.store import Store
from tests.faults import kill_when
from tests.llm_fake_server import coder_executable

CODEBOOK = """
name: faults
questions:
  - id: H1
    text: Clinical leaders drive adoption.
themes:
  - id: leadership
    label: Clinical leadership
    definition: A named clinical leader drives the change.
"""


def answers_csv(path: Path, n: int) -> Path:
    lines = ["id,question,text"]
    lines += [f"{i},H1,Answer number {i} about a clinical lead and the pathway." for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def project(tmp_path: Path) -> Path:
    db = tmp_path / "p.db"
    (tmp_path / "codebook.yaml").write_text(CODEBOOK)
    added = CliRunner().invoke(cli, ["codebook", "add", str(tmp_path / "codebook.yaml"), "--db", str(db)])
    assert added.exit_code == 0, added.output
    return db


def dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


def test_a_full_disk_during_import_is_a_clear_error_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = project(tmp_path)
    before = dump(db)
    connect = coder.store._connect
    pages = os.path.getsize(db) // 4096 + 8

    def capped(path: Path, read_only: bool = False) -> sqlite3.Connection:
        conn = connect(path, read_only)
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(coder.store, "_connect", capped)
    source = answers_csv(tmp_path / "answers.csv", 5_000)
    result = CliRunner().invoke(cli, ["import", str(source), "--db", str(db)])
    assert result.exit_code == 1, result.output
    assert "disk is full" in result.output and str(db) in result.output
    assert "Traceback" not in result.output
    monkeypatch.undo()
    assert dump(db) == before


@pytest.mark.slow
def test_kill_9_during_import_leaves_the_project_as_it_was(tmp_path: Path) -> None:
    db = project(tmp_path)
    with Store(db):
        pass  # WAL mode and migrations settled before the baseline
    before = dump(db)
    source = answers_csv(tmp_path / "answers.csv", 60_000)
    command = [coder_executable(), "import", str(source), "--db", str(db)]
    wal = Path(f"{db}-wal")
    # The condition: the import's transaction has started writing pages.
    kill_when(command, lambda: wal.exists() and wal.stat().st_size > 256 * 1024)
    assert dump(db) == before
    # The next run imports every answer, once.
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with Store(db) as store:
        assert store.count_responses() == 60_000
