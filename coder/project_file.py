"""The project file itself: opening it, its schema version, and the errors a user can act on.

A project is one SQLite file (WAL mode, a busy timeout so several reviewers can share it).
This module knows how to open it read-write or read-only and how to say what is wrong
with it; :class:`coder.store.Store` builds on it, and :class:`StorePart` is what every part
of the store (``coder/*_queries.py``) stands on. Its write transactions are
``coder/project_database.py``'s (sqlite-utils, imported only when a command writes).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coder.errors import CoderError

if TYPE_CHECKING:
    from coder.project_database import ProjectDatabase

BUSY_TIMEOUT_MS = 30_000

#: Where sqlite-utils' ``Migrations`` records the migrations applied, and coder's set name.
MIGRATIONS_TABLE = "_sqlite_migrations"
MIGRATION_SET = "coder"

#: The names of the migrations in ``coder/migrations.py``, oldest first. A project with
#: exactly these applied is opened without importing the migrations, and so without
#: sqlite-utils (``coder status`` starts about 80 ms sooner); any other project goes through
#: ``coder.migrations`` itself. tests/test_import_graph.py fails until a new migration is
#: named here too.
CURRENT_MIGRATIONS = (
    "m001_initial",
    "m002_llm_redaction_and_batches",
    "m003_discover_theme_candidates",
    "m004_embedded_models",
    "m005_finetuned_encoders",
    "m007_assignments",
    "m008_reviewer_tokens",
)


class ProjectFileError(CoderError):
    """The project file cannot be used as it is: unreadable, damaged, read-only for a
    write, locked, or written by a newer coder. Nothing was changed."""


def describe_sqlite_error(path: Path | str, error: sqlite3.Error) -> str:
    """A message a user can act on for an SQLite error on the project file ``path``."""
    text = str(error)
    lowered = text.lower()
    if "readonly" in lowered or "read-only" in lowered:
        return (
            f"{path}: the project file (or its folder) is read-only, so nothing can be written; "
            "commands that only read it still work. Make it writable, or copy it to a "
            "writable folder"
        )
    if "locked" in lowered or "busy" in lowered:
        return (
            f"{path}: the project is locked by another coder process (precode, train or "
            f"review) that held it for more than {BUSY_TIMEOUT_MS // 1000} s; try again when it "
            "has finished"
        )
    if "full" in lowered:
        return f"{path}: the disk is full; nothing was written. Free some space and run the command again"
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return (
            f"{path}: the project file is damaged or not an SQLite database ({text}); nothing "
            "was changed. Run 'coder doctor --db FILE', and restore it from a backup or "
            "recover what is readable with 'sqlite3 FILE .recover'"
        )
    if "unable to open" in lowered:
        return (
            f"{path}: cannot open or create the project file ({text}); check that the folder "
            "exists and is writable"
        )
    return f"{path}: SQLite error on the project file: {text}"


def connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        # In a folder coder cannot write, SQLite cannot create the WAL's shared-memory file
        # that a WAL reader needs; nobody can write the file there either, so it is
        # opened as immutable.
        if not os.access(path.parent, os.W_OK) and not Path(f"{path}-shm").exists():
            uri += "&immutable=1"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    else:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def writable(path: Path) -> bool:
    """Whether coder can write the project: the file, and the folder for SQLite's WAL files
    (unless they exist and are writable)."""
    if not path.exists():
        return True  # to be created; a folder that refuses it gives a clear error
    if not os.access(path, os.W_OK):
        return False
    if os.access(path.parent, os.W_OK):
        return True
    return all(os.access(f"{path}{suffix}", os.W_OK) for suffix in ("-wal", "-shm"))


def schema_number(name: str) -> int:
    """The number of a migration name ('m004_embedded_models' -> 4); 0 if it has none."""
    digits = "".join(ch for ch in name.split("_", 1)[0] if ch.isdigit())
    return int(digits) if digits else 0


def json_list(values: Sequence[Any] | None) -> str | None:
    """``values`` as a JSON array (for ``json_each(?)``), or None when not given."""
    return json.dumps(list(values)) if values is not None else None


def where_clause(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """A WHERE clause of the conditions whose value is given (not None), and its parameters.

    Each condition is (an SQL test with one ``?``, its value); an optional filter of a
    reader is passed as None when the caller did not ask for it.
    """
    given = [(test, value) for test, value in conditions if value is not None]
    if not given:
        return "", []
    return " where " + " and ".join(test for test, _ in given), [value for _, value in given]


class StorePart:
    """What every part of :class:`coder.store.Store` stands on: the open project file.

    The parts (responses, proposals, decisions, encoders) are mixins in query modules
    beside the store; ``Store`` composes them and sets these attributes when it opens.
    """

    path: Path
    #: The plain connection: the readers use it, so reading needs no sqlite-utils.
    conn: sqlite3.Connection
    read_only: bool

    @property
    def db(self) -> ProjectDatabase:
        """The connection wrapped by sqlite-utils (table helpers, write transactions);
        :class:`coder.store.Store` builds it on first use."""
        raise NotImplementedError

    def _now(self) -> str:
        """The time stamped on new rows; :class:`coder.store.Store` gives its clock."""
        raise NotImplementedError

    def _rows(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        """Rows addressable by column name, built in C (sqlite3.Row): the batch readers of a
        large project spent a fifth of their time building one dict per row."""
        cursor = self.conn.cursor()
        cursor.row_factory = sqlite3.Row
        try:
            return cursor.execute(sql, params).fetchall()
        finally:
            cursor.close()
