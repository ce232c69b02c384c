"""SQL of the review leases (``leases``: which item each open review session is on)."""

from __future__ import annotations

from typing import Any

from coder.store import Store

_COLUMNS = "session_id, reviewer, response_id, taken_at, expires_at"


def holders(store: Store, response_id: str, session_id: str, now: str) -> list[tuple[str, str]]:
    """(session id, reviewer) of the other sessions holding a live lease on one response."""
    sql = (
        "select session_id, reviewer from leases"
        " where response_id = ? and session_id != ? and expires_at > ?"
    )
    return store.db.conn.execute(sql, [response_id, session_id, now]).fetchall()


def held_elsewhere(store: Store, session_id: str, now: str) -> list[tuple[str, str]]:
    """(response id, reviewer) of every live lease held by another session."""
    sql = "select response_id, reviewer from leases where session_id != ? and expires_at > ?"
    return store.db.conn.execute(sql, [session_id, now]).fetchall()


def live_leases(store: Store, now: str) -> list[tuple[Any, ...]]:
    """Every live lease: (session, reviewer, response, taken, expires), by reviewer."""
    sql = f"select {_COLUMNS} from leases where expires_at > ? order by reviewer, taken_at"
    return store.db.conn.execute(sql, [now]).fetchall()


def put(
    store: Store, session_id: str, reviewer: str, response_id: str, now: str, expires_at: str
) -> None:
    """Point a session's lease at ``response_id`` (inside the caller's transaction)."""
    store.db.conn.execute(
        "insert into leases (session_id, reviewer, response_id, taken_at, expires_at)"
        " values (?, ?, ?, ?, ?) on conflict(session_id) do update set"
        " reviewer = excluded.reviewer, taken_at = case when leases.response_id ="
        " excluded.response_id then leases.taken_at else excluded.taken_at end,"
        " response_id = excluded.response_id, expires_at = excluded.expires_at",
        [session_id, reviewer, response_id, now, expires_at],
    )


def delete_expired(store: Store, now: str) -> None:
    """Drop lapsed leases (inside the caller's transaction)."""
    store.db.conn.execute("delete from leases where expires_at <= ?", [now])


def delete_session(store: Store, session_id: str) -> None:
    """Drop one session's lease (inside the caller's transaction)."""
    store.db.conn.execute("delete from leases where session_id = ?", [session_id])


def delete(store: Store, session_id: str) -> None:
    """Drop one session's lease, in a transaction of its own."""
    with store.db.atomic():
        delete_session(store, session_id)
