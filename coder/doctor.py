"""``coder doctor``: check a project file without changing it.

Runs SQLite's ``PRAGMA integrity_check`` and ``foreign_key_check``, reports the schema
version (migrations applied, pending, or from a newer coder), and lists how each trained
model is stored: the safe JSON + arrays format, pruned, or a legacy pickle, which coder
never loads (it could run code) and which is reported as unsafe with what to do.

The file is opened with a plain read-only SQLite connection, not a :class:`Store`, because
opening a store applies migrations: a check must not write.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from coder import doctor_queries
from coder.atomic import is_sqlite_file
from coder.embedded import state_io
from coder.errors import CoderError

Level = Literal["ok", "warning", "problem"]


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report."""

    level: Level
    check: str
    detail: str


def _connect_read_only(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        doctor_queries.count_schema_objects(conn)
        return conn
    except sqlite3.DatabaseError as error:
        raise CoderError(f"{path}: cannot be read as an SQLite database ({error})") from None


def check_project(path: Path) -> list[Finding]:
    """Every finding about the project file at ``path`` (raises CoderError if unreadable)."""
    if not path.exists():
        raise CoderError(f"{path}: no such project file")
    if not is_sqlite_file(path):
        raise CoderError(f"{path}: not a coder project (not an SQLite database file)")
    conn = _connect_read_only(path)
    try:
        return [
            _integrity(conn),
            *_foreign_keys(conn),
            _schema(conn),
            *_models(conn),
        ]
    except sqlite3.DatabaseError as error:
        return [Finding("problem", "database", f"reading failed: {error}")]
    finally:
        conn.close()


def _integrity(conn: sqlite3.Connection) -> Finding:
    rows = doctor_queries.integrity_check(conn, 20)
    if rows == ["ok"]:
        return Finding("ok", "integrity", "SQLite integrity_check: ok")
    return Finding(
        "problem",
        "integrity",
        "SQLite integrity_check found damage: "
        + "; ".join(rows)
        + ". Restore the file from a backup, or recover what is readable with "
        "'sqlite3 FILE .recover'",
    )


def _foreign_keys(conn: sqlite3.Connection) -> list[Finding]:
    rows = doctor_queries.foreign_key_violations(conn)
    if not rows:
        return []
    tables = sorted({str(row[0]) for row in rows})
    return [
        Finding(
            "problem",
            "foreign keys",
            f"{len(rows)} row(s) point at rows that do not exist (tables: {', '.join(tables)})",
        )
    ]


def _schema(conn: sqlite3.Connection) -> Finding:
    from coder.migrations import migrations

    known = [migration.name for migration in migrations._migrations]
    tables = doctor_queries.table_names(conn)
    if "_sqlite_migrations" not in tables:
        return Finding("problem", "schema", "no migration record: not a coder project file")
    applied = doctor_queries.applied_migrations(conn)
    unknown = [name for name in applied if name not in known]
    if unknown:
        return Finding(
            "problem",
            "schema",
            f"written by a newer coder (migrations this version does not know: "
            f"{', '.join(unknown)}); upgrade coder before using this file",
        )
    pending = [name for name in known if name not in applied]
    version = f"schema version {len(applied)} of {len(known)} ({applied[-1] if applied else '-'})"
    if pending:
        return Finding(
            "warning",
            "schema",
            f"{version}; {len(pending)} migration(s) will be applied the next time a command "
            f"opens it ({', '.join(pending)})",
        )
    return Finding("ok", "schema", f"{version}: up to date")


def _models(conn: sqlite3.Connection) -> list[Finding]:
    tables = doctor_queries.table_names(conn)
    if "models" not in tables:
        return [Finding("ok", "models", "no trained models")]
    rows = doctor_queries.model_heads(conn)
    if not rows:
        return [Finding("ok", "models", "no trained models")]
    counts: dict[str, int] = {}
    findings = []
    for row_id, version, head in rows:
        kind = state_io.blob_format(head)
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "pickle":
            findings.append(
                Finding(
                    "problem",
                    "models",
                    f"row {row_id} ({version}) is a Python pickle: UNSAFE (loading a pickle can "
                    "run any code). coder never loads it; run 'coder train' to store a new model "
                    "in the safe format, and only share this file once it is retrained",
                )
            )
        elif kind == "unknown":
            findings.append(
                Finding("problem", "models", f"row {row_id} ({version}) is in an unknown format")
            )
    summary = ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items()))
    findings.insert(
        0, Finding("ok" if not findings else "warning", "models", f"model storage: {summary}")
    )
    return findings


def healthy(findings: list[Finding]) -> bool:
    """True when no finding is a problem."""
    return all(finding.level != "problem" for finding in findings)
