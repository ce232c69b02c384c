"""The review queue's reads, beside the store: every SQL the review logic and app need.

Kept apart from :mod:`coder.store` because these are the hot reads of the review app
(a few ms at 100k responses), shaped for its in-memory index rather than for general
use. Like the store, this is a place SQL may live (tests/test_layers.py checks it);
writes stay in the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from coder.store import Store

# Two plain scans (no JSON work in SQL): ~0.2 s for 100,000 responses. Proposed theme
# codes are read later, only for the rows a table page shows or a theme filter needs.
_RESPONSES_SQL = "select id, question, tags from responses order by rowid"
_PROPOSALS_SQL = "select id, response_id, confidence from proposals where status = 'ok' order by id"
_DECISION_COLUMNS = "id, response_id, reviewer, action, labels, undoes"


def ok_proposals(store: Store) -> Iterator[tuple[int, str, float | None]]:
    """(proposal id, response id, confidence) of every successful proposal, oldest first."""
    return iter(store.conn.execute(_PROPOSALS_SQL))


def response_keys(store: Store) -> Iterator[tuple[str, str | None, str | None]]:
    """(id, question, tags JSON) of every response in import order."""
    return iter(store.conn.execute(_RESPONSES_SQL))


def decisions_after(store: Store, last_id: int) -> list[tuple[Any, ...]]:
    """(id, response id, reviewer, action, labels, undoes) of decisions after ``last_id``."""
    sql = f"select {_DECISION_COLUMNS} from decisions where id > ? order by id"
    return store.conn.execute(sql, [last_id]).fetchall()


def decisions_of(store: Store, response_id: str) -> list[tuple[Any, ...]]:
    """The same columns for every decision on one response, oldest first."""
    sql = f"select {_DECISION_COLUMNS} from decisions where response_id = ? order by id"
    return store.conn.execute(sql, [response_id]).fetchall()


def proposed_themes(store: Store, proposal_ids: Sequence[int]) -> dict[str, tuple[str, ...]]:
    """Theme codes of a few proposals, by response id (for a table page)."""
    rows = store.conn.execute(
        "select response_id, (select group_concat(json_extract(t.value, '$.code'), char(31))"
        " from json_each(output, '$.themes') t) from proposals"
        " where id in (select value from json_each(?))",
        [json.dumps(list(proposal_ids))],
    )
    return {rid: tuple(themes.split("\x1f")) if themes else () for rid, themes in rows}


def proposed_stances(store: Store, proposal_ids: Sequence[int]) -> dict[str, str | None]:
    """Stance of a few proposals, by response id (for a table page)."""
    rows = store.conn.execute(
        "select response_id, json_extract(output, '$.stance') from proposals"
        " where id in (select value from json_each(?))",
        [json.dumps(list(proposal_ids))],
    )
    return dict(rows.fetchall())


def proposals_with_theme(store: Store, theme: str) -> list[tuple[int, str]]:
    """(proposal id, response id) of successful proposals that name ``theme``."""
    pattern = '%"code":' + json.dumps(theme) + "%"
    rows = store.conn.execute(
        "select id, response_id from proposals where status = 'ok' and output like ?", [pattern]
    )
    return rows.fetchall()


def responses_saying(store: Store, text: str, edge_characters: str) -> set[str]:
    """Ids of responses equal to ``text`` once lower-cased and trimmed of ``edge_characters``."""
    sql = "select id from responses where lower(trim(text, ?)) = ?"
    return {row[0] for row in store.conn.execute(sql, [edge_characters, text])}


def responses_containing(store: Store, text: str, limit: int | None = None) -> set[str]:
    """Ids of responses whose text contains ``text`` (case-insensitive) or whose id is it."""
    sql = "select id from responses where text like ? escape '\\' or id = ?"
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    params: list[Any] = [pattern, text]
    if limit is not None:
        sql += " limit ?"
        params.append(limit)
    return {row[0] for row in store.conn.execute(sql, params)}


def notes_in_force(store: Store, response_id: str) -> list[tuple[str, str]]:
    """(reviewer, note) of the notes on a response that were not undone, oldest first."""
    return store.conn.execute(
        "select reviewer, note from decisions d where response_id = ? and action = 'note'"
        " and not exists (select 1 from decisions u"
        " where u.response_id = d.response_id and u.undoes = d.id) order by id",
        [response_id],
    ).fetchall()


def decision_row(store: Store, decision_id: int) -> dict[str, Any] | None:
    """One decision row as a dict, or None."""
    rows = list(store.db.query("select * from decisions where id = ?", [decision_id]))
    return rows[0] if rows else None


def is_undone(store: Store, response_id: str, decision_id: int) -> bool:
    """Whether an undo points at ``decision_id`` (stays on the (response_id, ...) index)."""
    sql = "select 1 from decisions where response_id = ? and undoes = ? limit 1"
    return store.conn.execute(sql, [response_id, decision_id]).fetchone() is not None


def decision_times(store: Store) -> list[tuple[str, str, str]]:
    """(reviewer, action, created_at) of every decision but undos, by reviewer then id."""
    return store.conn.execute(
        "select reviewer, action, created_at from decisions where action != 'undo'"
        " order by reviewer, id"
    ).fetchall()


def snippets(store: Store, response_ids: Sequence[str], length: int) -> dict[str, str]:
    """The first ``length`` characters of a few responses, newlines as spaces."""
    rows = store.conn.execute(
        "select id, substr(replace(text, char(10), ' '), 1, ?) from responses"
        " where id in (select value from json_each(?))",
        [length, json.dumps(list(response_ids))],
    )
    return dict(rows.fetchall())


def assignments_mark(store: Store) -> int:
    """The newest assignment row's id (0: none): changes when `coder assign` runs again."""
    return int(
        store.conn.execute("select coalesce(max(rowid), 0) from assignments").fetchone()[0]
    )


def assignments_in_force(store: Store) -> list[tuple[str, str, int]]:
    """(response id, reviewer, blind) of every response's latest assignment run (one run's
    rows share a time stamp; coder/assign.py)."""
    return store.conn.execute(
        "select response_id, reviewer, blind from ("
        " select response_id, reviewer, blind, created_at,"
        " max(created_at) over (partition by response_id) as latest from assignments"
        ") where created_at = latest order by response_id, reviewer"
    ).fetchall()


def assignments_of(store: Store, response_ids: Sequence[str]) -> list[tuple[str, str, int]]:
    """:func:`assignments_in_force` for the given responses only (the first item's batch:
    an index lookup each, not a read of every assignment)."""
    return store.conn.execute(
        "select response_id, reviewer, blind from ("
        " select response_id, reviewer, blind, created_at,"
        " max(created_at) over (partition by response_id) as latest from assignments"
        " where response_id in (select value from json_each(?))"
        ") where created_at = latest order by response_id, reviewer",
        [json.dumps(list(response_ids))],
    ).fetchall()


# --- the first item, before the index is built (coder/review/first_item.py) ----------


def response_count(store: Store) -> int:
    """How many responses the project holds (the primary-key index: a few ms)."""
    return int(store.conn.execute("select count(*) from responses").fetchone()[0])


def every_response_proposed(store: Store, total: int) -> bool:
    """True when every response has a proposal and none failed (two index-only scans).

    Only then is the least confident proposal the first item in confidence order;
    an unproposed response would come first."""
    sql = "select count(distinct response_id) from proposals"
    if int(store.conn.execute(sql).fetchone()[0]) != total:
        return False
    failed = store.conn.execute("select 1 from proposals where status != 'ok' limit 1")
    return failed.fetchone() is None


def least_confident(store: Store, limit: int) -> list[tuple[int, str, float | None]]:
    """(proposal id, response id, confidence) of the ``limit`` least confident successful
    proposals (NULL confidence first, as the queue orders them)."""
    return store.conn.execute(
        "select id, response_id, confidence from proposals where status = 'ok'"
        " order by confidence limit ?",
        [limit],
    ).fetchall()


def current_proposals(
    store: Store, response_ids: Sequence[str]
) -> dict[str, tuple[int, float | None]]:
    """Each response's current (latest successful) proposal: id and confidence."""
    rows = store.conn.execute(
        "select response_id, id, confidence from proposals where id in ("
        " select max(id) from proposals where status = 'ok'"
        " and response_id in (select value from json_each(?)) group by response_id)",
        [json.dumps(list(response_ids))],
    )
    return {rid: (pid, confidence) for rid, pid, confidence in rows}


def response_rows(
    store: Store, response_ids: Sequence[str]
) -> list[tuple[int, str, str | None, str | None]]:
    """(rowid, id, question, tags JSON) of a few responses, in import order."""
    return store.conn.execute(
        "select rowid, id, question, tags from responses"
        " where id in (select value from json_each(?)) order by rowid",
        [json.dumps(list(response_ids))],
    ).fetchall()


def responses_from(
    store: Store, after_rowid: int, limit: int
) -> list[tuple[int, str, str | None, str | None]]:
    """(rowid, id, question, tags JSON) of the next ``limit`` responses in import order."""
    return store.conn.execute(
        "select rowid, id, question, tags from responses where rowid > ? order by rowid limit ?",
        [after_rowid, limit],
    ).fetchall()


def decisions_near(store: Store, reviewer: str) -> list[tuple[Any, ...]]:
    """Decision columns (as :func:`decisions_after`) of every response ``reviewer`` has
    decided anything on, oldest first: that reviewer's states, without the whole index."""
    sql = (
        f"select {_DECISION_COLUMNS} from decisions where response_id in"
        " (select response_id from decisions where reviewer = ?) order by id"
    )
    return store.conn.execute(sql, [reviewer]).fetchall()


def last_decision_id(store: Store) -> int:
    """The newest decision's id (0: none)."""
    return int(store.conn.execute("select coalesce(max(id), 0) from decisions").fetchone()[0])
