"""The reads `coder doctor` makes of a project file, on a plain read-only sqlite3 connection.

Plain ``sqlite3`` rather than the store: the doctor must open a damaged or foreign file
without migrating it or creating anything.
"""

from __future__ import annotations

import sqlite3


def count_schema_objects(conn: sqlite3.Connection) -> int:
    """How many objects the schema holds; reading it fails on a file that is not SQLite."""
    row = conn.execute("select count(*) from sqlite_master").fetchone()
    return int(row[0])


def integrity_check(conn: sqlite3.Connection, most: int = 20) -> list[str]:
    """SQLite's integrity_check lines (``['ok']`` for a sound file), at most ``most``."""
    return [row[0] for row in conn.execute(f"PRAGMA integrity_check({int(most)})")]


def foreign_key_violations(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    """SQLite's foreign_key_check rows: (table, rowid, parent table, key index)."""
    return [tuple(row) for row in conn.execute("PRAGMA foreign_key_check").fetchall()]


def table_names(conn: sqlite3.Connection) -> set[str]:
    """Names of the file's tables."""
    return {row[0] for row in conn.execute("select name from sqlite_master where type='table'")}


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """Names of coder's migrations recorded in the file, in the order they ran."""
    return [
        row[0]
        for row in conn.execute(
            "select name from _sqlite_migrations where migration_set = 'coder' order by id"
        )
    ]


def model_heads(conn: sqlite3.Connection) -> list[tuple[int, str, bytes | None]]:
    """(id, version, first 64 bytes of the stored state) of each trained model."""
    return [
        (row[0], row[1], row[2])
        for row in conn.execute("select id, version, substr(blob, 1, 64) from models order by id")
    ]
