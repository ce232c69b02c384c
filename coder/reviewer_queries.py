"""SQL of the reviewer sign-in tokens (``reviewer_tokens``), beside the store.

Writes go through :meth:`Store.db.atomic` so they take the write lock up front, as every
other write to a project file does.
"""

from __future__ import annotations

from typing import Any

from coder.store import Store

_COLUMNS = "reviewer, token_sha256, created_at, revoked_at, last_sign_in"


def token_row(store: Store, reviewer: str) -> tuple[Any, ...] | None:
    """(reviewer, token hash, created, revoked, last sign-in) of one reviewer, or None."""
    sql = f"select {_COLUMNS} from reviewer_tokens where reviewer = ?"
    return store.db.conn.execute(sql, [reviewer]).fetchone()  # type: ignore[no-any-return]


def token_rows(store: Store) -> list[tuple[Any, ...]]:
    """The same columns for every reviewer, by name."""
    sql = f"select {_COLUMNS} from reviewer_tokens order by reviewer"
    return store.db.conn.execute(sql).fetchall()


def save_token(store: Store, reviewer: str, token_sha256: str, created_at: str) -> None:
    """Insert or replace a reviewer's token (a new token revokes the old one)."""
    with store.db.atomic():
        store.db.conn.execute(
            "insert into reviewer_tokens (reviewer, token_sha256, created_at, revoked_at)"
            " values (?, ?, ?, null) on conflict(reviewer) do update set"
            " token_sha256 = excluded.token_sha256, created_at = excluded.created_at,"
            " revoked_at = null",
            [reviewer, token_sha256, created_at],
        )


def revoke_token(store: Store, reviewer: str, revoked_at: str) -> int:
    """Mark a reviewer's token revoked. Returns the number of rows changed (0 or 1)."""
    with store.db.atomic():
        cursor = store.db.conn.execute(
            "update reviewer_tokens set revoked_at = ? where reviewer = ? and revoked_at is null",
            [revoked_at, reviewer],
        )
    return cursor.rowcount


def mark_sign_in(store: Store, reviewer: str, stamp: str) -> None:
    """Record when a reviewer last signed in."""
    with store.db.atomic():
        store.db.conn.execute(
            "update reviewer_tokens set last_sign_in = ? where reviewer = ?", [stamp, reviewer]
        )
