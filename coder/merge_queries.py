"""The SQL of ``coder merge`` (coder/merge.py), beside the store.

Table and column names come from coder's own schema (``PRAGMA table_info``), never from
the other file's contents, so building statements from them is safe.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any


def table_names(conn: sqlite3.Connection) -> set[str]:
    """The tables of a project file."""
    sql = "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
    return {row[0] for row in conn.execute(sql)}


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """Column names of ``table`` in schema order."""
    return [row[1] for row in conn.execute(f"pragma table_info([{table}])")]


def light_rows(
    conn: sqlite3.Connection, table: str, light: Sequence[str], hashed: Sequence[str], order_by: str
) -> list[tuple[Any, ...]]:
    """Rows of ``table`` as the ``light`` columns plus one text: every ``hashed`` column
    rendered by SQLite's ``quote()`` (exact: strings quoted, numbers in full, blobs in hex),
    separated by a unit separator. Ordered by ``order_by``."""
    listed = ", ".join(f"[{name}]" for name in light)
    text = " || char(31) || ".join(f"quote([{name}])" for name in hashed) or "''"
    return conn.execute(f"select {listed}, {text} from [{table}] order by [{order_by}]").fetchall()


def rows_by_pk(
    conn: sqlite3.Connection, table: str, names: Sequence[str], pk: str, keys: Sequence[Any]
) -> dict[Any, tuple[Any, ...]]:
    """Rows of ``table`` (columns ``names``) with these primary keys, by key."""
    if not keys:
        return {}
    listed = ", ".join(f"[{name}]" for name in names)
    at = list(names).index(pk)
    sql = f"select {listed} from [{table}] where [{pk}] in (select value from json_each(?))"
    return {row[at]: row for row in conn.execute(sql, [json.dumps(list(keys))])}


def response_ids(conn: sqlite3.Connection) -> set[str]:
    """Every response id of a project."""
    return {row[0] for row in conn.execute("select id from responses")}


def source_files_of(conn: sqlite3.Connection, ids: Iterable[str]) -> list[str]:
    """The distinct source files of these responses (to say what to import)."""
    sql = ("select distinct coalesce(source_file, '?') from responses"
           " where id in (select value from json_each(?)) order by 1")
    return [row[0] for row in conn.execute(sql, [json.dumps(list(ids))])]


def delete_ids(conn: sqlite3.Connection, table: str, pk: str, ids: Sequence[Any]) -> None:
    """Delete the rows of ``table`` with these ``pk`` values (rows being re-laid)."""
    if ids:
        conn.execute(f"delete from [{table}] where [{pk}] in (select value from json_each(?))",
                     [json.dumps(list(ids))])


def insert_rows(conn: sqlite3.Connection, table: str, names: Sequence[str], values: Iterable[Sequence[Any]]) -> None:
    """Insert rows of ``names`` into ``table``."""
    listed = ", ".join(f"[{name}]" for name in names)
    marks = ", ".join("?" for _ in names)
    conn.executemany(f"insert into [{table}] ({listed}) values ({marks})", values)


def remap_column(conn: sqlite3.Connection, table: str, column: str, mapping: dict[Any, Any]) -> None:
    """Rewrite ``table.column`` through ``mapping`` (old local id -> new local id).

    One UPDATE through a temporary table, so a large remap is not one statement per row.
    """
    if not mapping:
        return
    conn.execute("create temp table if not exists _coder_remap (old primary key, new)")
    conn.execute("delete from _coder_remap")
    conn.executemany("insert into _coder_remap (old, new) values (?, ?)", mapping.items())
    conn.execute(
        f"update [{table}] set [{column}] = (select new from _coder_remap where old = [{table}].[{column}])"
        f" where [{column}] in (select old from _coder_remap)"
    )
    conn.execute("delete from _coder_remap")


def max_value(conn: sqlite3.Connection, table: str, column: str) -> int:
    """The largest value of an integer column (0 for an empty table)."""
    return int(conn.execute(f"select coalesce(max([{column}]), 0) from [{table}]").fetchone()[0])
