"""``coder doctor`` and read commands on files that are missing, foreign or unsafe."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.embedded import state_io
from coder.store import Store
from tests.test_safe_models import plant_pickle


def project(tmp_path: Path) -> Path:
    db = tmp_path / "project.db"
    result = CliRunner().invoke(cli, ["codebook", "add", "--example", "--db", str(db)])
    assert result.exit_code == 0, result.output
    return db


def test_doctor_on_a_healthy_project(tmp_path: Path) -> None:
    db = project(tmp_path)
    before = db.read_bytes()
    result = CliRunner().invoke(cli, ["doctor", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    findings = {f["check"]: f for f in json.loads(result.output)["findings"]}
    assert findings["integrity"]["level"] == "ok"
    assert "up to date" in findings["schema"]["detail"]
    assert findings["models"]["detail"] == "no trained models"
    assert db.read_bytes() == before  # a check writes nothing


def test_doctor_reports_a_pickled_model_as_unsafe_and_exits_1(tmp_path: Path) -> None:
    db = project(tmp_path)
    marker = tmp_path / "pwned"
    plant_pickle(db, marker)
    result = CliRunner().invoke(cli, ["doctor", "--db", str(db)])
    assert result.exit_code == 1, result.output
    assert "pickle" in result.output and "UNSAFE" in result.output
    assert "coder train" in result.output
    assert not marker.exists()


def test_doctor_reports_a_future_schema_and_damage(tmp_path: Path) -> None:
    db = project(tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "insert into _sqlite_migrations (migration_set, name, applied_at) "
            "values ('coder', 'm999_from_the_future', '2030-01-01')"
        )
    result = CliRunner().invoke(cli, ["doctor", "--db", str(db)])
    assert result.exit_code == 1 and "newer coder" in result.output
    # A file that is not SQLite, and one whose pages are damaged.
    text = tmp_path / "notes.db"
    text.write_text("just some notes")
    result = CliRunner().invoke(cli, ["doctor", "--db", str(text)])
    assert result.exit_code == 1 and "not an SQLite database" in result.output
    damaged = tmp_path / "damaged.db"
    with Store(damaged):
        pass
    with sqlite3.connect(damaged) as conn:
        conn.execute("create table filler (x text)")
        conn.executemany("insert into filler values (?)", [("x" * 500,)] * 2000)
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(damaged.read_bytes())
    page = 4096
    data[page * 5 : page * 5 + 200] = b"\xff" * 200  # garble a b-tree page
    damaged.write_bytes(bytes(data))
    result = CliRunner().invoke(cli, ["doctor", "--db", str(damaged)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output


def test_doctor_lists_safe_models(tmp_path: Path) -> None:
    from coder.embedded.classifier import LocalClassifier
    from tests.test_safe_models import codebook, examples

    db = tmp_path / "trained.db"
    with Store(db) as store:
        store.save_codebook(codebook(), source="test")
        classifier = LocalClassifier(None, use_stored_model=False)
        classifier.fit(examples(), codebook(), gate=False)
        classifier.save(store)
    result = CliRunner().invoke(cli, ["doctor", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    assert f"1 {state_io.FORMAT_NAME}" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["responses"],
        ["report", "--out", "out"],
        ["export", "--out", "out.csv"],
        ["codebook", "show"],
        ["codebook", "versions"],
        ["eval", "history"],
        ["doctor"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_read_commands_do_not_create_a_project(tmp_path: Path, command: list[str]) -> None:
    typo = tmp_path / "typo.db"
    result = CliRunner().invoke(cli, [*command, "--db", str(typo)])
    assert result.exit_code == 1, result.output
    assert "typo.db" in result.output and "no such project file" in result.output
    assert "Traceback" not in result.output
    assert not typo.exists() and list(tmp_path.iterdir()) == []


def test_read_commands_refuse_a_file_that_is_not_a_project(tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    notes.write_text("id,text\n1,hello\n")
    result = CliRunner().invoke(cli, ["status", "--db", str(notes)])
    assert result.exit_code == 1 and "not an SQLite database" in result.output
    assert notes.read_text() == "id,text\n1,hello\n"
