"""SQL of the pre-coding pipeline: which responses still need a proposal, and the
redacted text kept beside each original."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coder.store import Store

_TODO_SQL = """select id from responses where id not in (
                  select response_id from proposals
                  where status = 'ok' and codebook_version = ?)"""


def ids_to_precode(
    store: Store, codebook_version: int, *, redo: bool = False, limit: int | None = None
) -> list[str]:
    """Ids without a successful proposal for ``codebook_version`` (all with ``redo``), in
    import order; ``limit`` is applied in SQL."""
    sql = "select id from responses" if redo else _TODO_SQL
    params: list[Any] = [] if redo else [codebook_version]
    sql += " order by rowid"
    if limit is not None:
        sql += " limit ?"
        params.append(max(0, limit))
    return [row[0] for row in store.db.execute(sql, params)]


def count_to_precode(store: Store, codebook_version: int) -> int:
    """How many responses lack a successful proposal for ``codebook_version`` (none read)."""
    row = store.db.execute(f"select count(*) from ({_TODO_SQL})", [codebook_version]).fetchone()
    return int(row[0])


def save_redacted_texts(store: Store, rows: Sequence[tuple[str, str, str]]) -> None:
    """Store (redacted text, redactions JSON, response id) rows in one transaction."""
    with store.db.atomic():
        store.db.conn.executemany(
            "update responses set redacted_text = ?, redactions = ? where id = ?", rows
        )
