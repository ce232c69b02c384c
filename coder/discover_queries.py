"""The ``theme_candidates`` table: the reads and writes of :mod:`coder.discover`."""

from __future__ import annotations

from typing import Any

from coder.store import Store, now


def insert_candidates(store: Store, rows: list[dict[str, Any]]) -> list[int]:
    """Store one discovery run's candidates in one transaction; returns their ids in order."""
    ids = []
    with store.db.atomic():
        table = store.db.table("theme_candidates")
        for row in rows:
            table.insert(row)
            ids.append(int(table.last_pk or 0))
    return ids


def candidate_rows(store: Store, status: str | None = None) -> list[dict[str, Any]]:
    """Candidate rows, newest run first then largest, optionally of one status."""
    sql = "select * from theme_candidates"
    params: list[Any] = []
    if status:
        sql += " where status = ?"
        params.append(status)
    sql += " order by created_at desc, count desc, id"
    return list(store.db.query(sql, params))


def candidate_row(store: Store, candidate_id: int) -> dict[str, Any] | None:
    """One candidate row, or None."""
    rows = list(store.db.query("select * from theme_candidates where id = ?", [candidate_id]))
    return rows[0] if rows else None


def update_candidate(store: Store, candidate_id: int, **fields: Any) -> None:
    """Change a candidate's fields, stamping ``updated_at``."""
    store.db.table("theme_candidates").update(candidate_id, {**fields, "updated_at": now()})
