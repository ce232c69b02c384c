"""A project's rows as ``coder merge`` sees them (coder/merge.py): how each table merges,
each row's stable id (the hash of its content), and the canonical dump that compares stores."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coder import merge_queries as queries
from coder.store import Store


@dataclass(frozen=True)
class Spec:
    """How one table merges."""

    table: str
    pk: str
    ordered: bool  # row order carries meaning (latest wins): lay the merged table out in time order
    refs: tuple[tuple[str, str], ...] = ()  # (column, table whose local id it holds)
    uid_column: str | None = None  # a column that already is a stable key (else: content hash)
    time_column: str = "created_at"
    keep_pk: bool = False  # the pk is itself stable (encoders.name): insert it as it is
    group: str | None = None  # order matters only within a group (rows of one response)


#: The tables a merge joins, in dependency order (a table's refs point at earlier ones).
SPECS: tuple[Spec, ...] = (
    Spec("codebook_versions", "version", True, uid_column="hash"),
    Spec("proposals", "id", True, refs=(("codebook_version", "codebook_versions"),), group="response_id"),
    Spec("decisions", "id", True, refs=(("proposal_id", "proposals"), ("undoes", "decisions")),
          group="response_id"),
    Spec("llm_calls", "id", False),
    Spec("encoders", "name", False, uid_column="name", keep_pk=True),
    # A model version has one row (retraining a version replaces it), so the version keys it.
    Spec("models", "id", False, refs=(("codebook_version", "codebook_versions"),),
          uid_column="version", time_column="trained_at"),
    Spec("assignments", "id", False),
)


SPEC_OF = {spec.table: spec for spec in SPECS}


#: Columns outside the merged tables that hold a merged table's local id: rewritten when
#: the ids they point at move.
REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "codebook_versions": (
        ("proposals", "codebook_version"),
        ("models", "codebook_version"),
        ("theme_candidates", "codebook_version"),
        ("llm_batches", "codebook_version"),
    ),
    "proposals": (("decisions", "proposal_id"),),
    "decisions": (("decisions", "undoes"),),
}


@dataclass(slots=True)
class Row:
    uid: str
    pk: Any
    light: tuple[Any, ...]  # the columns of light_names(), read for every row
    refs: dict[int, str | None]  # column position -> uid of the row it points at
    key: tuple[str, str]  # time order
    ours: bool
    values: list[Any] | None = None  # every column, read only for rows being inserted


class Side:
    """One project's rows of the merged tables, with their uids (read once)."""

    def __init__(self, conn: sqlite3.Connection, ours: bool, columns: dict[str, list[str]]) -> None:
        self.conn = conn
        self.rows: dict[str, list[Row]] = {}
        uid_of: dict[str, dict[Any, str]] = {}
        for spec in SPECS:
            if spec.table not in columns:
                continue
            self.rows[spec.table] = read_rows(conn, spec, columns[spec.table], uid_of, ours)


#: Columns read for every row besides the pk, time, group, key and references (the rest
#: are read only for rows that are inserted): what conflict detection needs.
LIGHT_EXTRA: dict[str, tuple[str, ...]] = {"decisions": ("response_id", "reviewer", "action", "labels")}


def read_rows(
    conn: sqlite3.Connection,
    spec: Spec,
    names: list[str],
    uid_of: dict[str, dict[Any, str]],
    ours: bool,
) -> list[Row]:
    """Every row's uid and the few columns ordering and conflicts need. SQLite renders the
    hashed columns as one string (``quote()`` of each): far less Python per row than
    reading and serialising every value."""
    ref_names = [column for column, _ in spec.refs if column in names]
    light = light_names(spec, names)
    # Blobs (a model's arrays) are not hashed: the version keys a model.
    hashed = [name for name in names
              if name != spec.pk and name not in ref_names and not (spec.table == "models" and name == "blob")]
    at = {name: n for n, name in enumerate(light)}
    targets = [(names.index(column), at[column], uid_of.setdefault(table, {}))
               for column, table in spec.refs if column in names]
    own = uid_of.setdefault(spec.table, {})
    result = []
    for raw in queries.light_rows(conn, spec.table, light, hashed, spec.pk):
        refs: dict[int, str | None] = {}
        for position, light_at, uids in targets:
            local = raw[light_at]
            # A dangling id keeps a placeholder, so the row still hashes the same everywhere.
            refs[position] = None if local is None else uids.get(local, f"missing:{local}")
        if spec.uid_column is not None:
            uid = str(raw[at[spec.uid_column]])
        else:
            text = f"{spec.table}\x1e{raw[-1]}\x1e{refs!r}"
            uid = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        pk = raw[0]
        own[pk] = uid
        stamp = str(raw[at[spec.time_column]] or "") if spec.time_column in at else ""
        result.append(Row(uid, pk, raw, refs, (stamp, uid), ours))
    return result


def light_names(spec: Spec, names: list[str]) -> list[str]:
    """The columns read for every row: pk first, then time, group, key, references and
    what conflict detection needs."""
    return list(dict.fromkeys(
        [spec.pk, *([spec.time_column] if spec.time_column in names else []),
         *([spec.group] if spec.group else []), *([spec.uid_column] if spec.uid_column else []),
         *[column for column, _ in spec.refs if column in names], *LIGHT_EXTRA.get(spec.table, ())]
    ))


def load_rows(conn: sqlite3.Connection, spec: Spec, names: list[str], rows: Sequence[Row]) -> None:
    """Read every column of ``rows`` (those about to be inserted)."""
    full = queries.rows_by_pk(conn, spec.table, names, spec.pk, [row.pk for row in rows])
    for row in rows:
        row.values = list(full[row.pk])


def table_columns(store: Store) -> dict[str, list[str]]:
    present = queries.table_names(store.db.conn)
    return {spec.table: queries.columns(store.db.conn, spec.table) for spec in SPECS if spec.table in present}


def canonical_dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """The merged tables without local ids: each row as (uid, content with references as
    uids). Ordered tables keep their row order (it decides what is current and in force);
    the others are sorted. Two projects with equal dumps hold the same work."""
    columns = table_columns(store)
    side = Side(store.db.conn, True, columns)
    dump: dict[str, list[tuple[Any, ...]]] = {}
    for spec in SPECS:
        if spec.table not in side.rows:
            continue
        names = columns[spec.table]
        pk_at = names.index(spec.pk)
        rows = []
        load_rows(store.db.conn, spec, names, side.rows[spec.table])
        for row in side.rows[spec.table]:
            values = [row.refs.get(i, value) for i, value in enumerate(row.values or ())]
            content = tuple(value for i, value in enumerate(values) if i != pk_at or spec.keep_pk)
            rows.append((row.uid, *content))
        if not spec.ordered:
            rows.sort(key=lambda item: repr(item))
        elif spec.group:
            # Order matters within a group (one response's rows), not across groups.
            group_at = names.index(spec.group)
            shift = 1 if group_at > pk_at and not spec.keep_pk else 0  # the pk is left out
            at = 1 + group_at - shift  # (uid, *content)
            rows.sort(key=lambda item: str(item[at]))  # stable: id order kept within a group
        dump[spec.table] = rows
    return dump
