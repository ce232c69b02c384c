"""The first item to review, found without building the whole queue index.

At 100,000 responses the index (:class:`~coder.review.index.ReviewIndex`) takes about half
a second of Python object creation. The first screen needs only one item and the
reviewer's counts, so the review app finds them here (one reviewer's decisions and a few
hundred proposals: tens of ms) and builds the index in a worker while the reviewer reads.

:func:`first_item` answers only when it can be exact: the item it returns is the one the
full index would put first. When it cannot tell cheaply (responses still without a
proposal, everything reviewed) it returns None and the caller
builds the index first, as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from coder import review_queries as queries
from coder.review.index import QueueEntry, ReviewIndex, apply_decisions
from coder.review.progress import Progress, progress
from coder.store import Store

#: Above this many responses the review app builds the index in a worker after the first
#: item is drawn (about 0.5 s at 100,000); below it, at once (a few ms).
DEFER_INDEX_ABOVE = 20_000

#: Proposals read per round in confidence order; doubled until an unreviewed one shows up.
_FIRST_BATCH = 256
_MAX_BATCH = 16_384


@dataclass
class FirstItem:
    """The entry the queue starts on and the reviewer's counts, as the full index has them."""

    entry: QueueEntry
    progress: Progress


class _Assigned:
    """Each response's reviewers and blindness in the assignments in force (as the index
    reads them), read for the ids the search looks at, not for the whole project: at
    100,000 assigned answers reading every assignment cost half the index build."""

    def __init__(self, store: Store):
        self.store = store
        self.none = queries.assignments_mark(store) == 0
        self.known: dict[str, tuple[tuple[str, ...], bool]] = {}
        self.read: set[str] = set()

    def load(self, response_ids: Iterable[str]) -> None:
        """Read the assignments of the ids not read yet (one query)."""
        missing = [rid for rid in dict.fromkeys(response_ids) if rid not in self.read]
        if self.none or not missing:
            return
        names: dict[str, tuple[str, ...]] = {}
        blind: dict[str, bool] = {}
        for response_id, reviewer, is_blind in queries.assignments_of(self.store, missing):
            names[response_id] = (*names.get(response_id, ()), reviewer)
            blind[response_id] = bool(is_blind)
        self.known.update({rid: (names[rid], blind[rid]) for rid in names})
        self.read.update(missing)

    def get(self, response_id: str) -> tuple[tuple[str, ...], bool] | None:
        """The response's (reviewers, blind), or None when it is not assigned."""
        self.load([response_id])
        return self.known.get(response_id)


def assigned_to(store: Store, response_id: str) -> tuple[str, ...]:
    """The reviewers ``response_id`` is assigned to now (empty: not assigned), read
    without the index: a session asks this of the few items other sessions hold."""
    return tuple(reviewer for _rid, reviewer, _blind in queries.assignments_of(store, [response_id]))


class _Passed:
    """Which response ids the queue passes over for ``reviewer``: reviewed by them,
    assigned to others only (coder/assign.py) or held by another session (``skip``,
    coder/leases.py), as next_unreviewed does."""

    def __init__(
        self,
        touched: dict[str, QueueEntry],
        reviewer: str,
        skip: Container[str],
        assigned: _Assigned,
    ):
        self.touched, self.reviewer, self.skip = touched, reviewer, skip
        self.assigned = assigned

    def __contains__(self, response_id: str) -> bool:
        entry = self.touched.get(response_id)
        if entry is not None and entry.status(self.reviewer) != "unreviewed":
            return True
        names = self.assigned.get(response_id)
        if names is not None and self.reviewer not in names[0]:
            return True
        return response_id in self.skip


def _states(store: Store, reviewer: str) -> dict[str, QueueEntry]:
    """Entries (reviewers' states only) of every response ``reviewer`` has decided on."""
    rows_by_response: dict[str, list[Sequence[Any]]] = {}
    for row in queries.decisions_near(store, reviewer):
        rows_by_response.setdefault(row[1], []).append(row)
    entries = {}
    for response_id, rows in rows_by_response.items():
        entry = QueueEntry(response_id, 0, None, None, None, None)
        apply_decisions(entry, rows)
        entries[response_id] = entry
    return entries


def _by_confidence(store: Store, passed: _Passed, question: str | None) -> QueueEntry | None:
    """The least confident unreviewed response (to ``question``, if given), ties in import
    order (as order_entries)."""
    limit = _FIRST_BATCH
    while limit <= _MAX_BATCH:
        rows = queries.least_confident(store, limit)
        complete = len(rows) < limit
        # Every proposal below the last one's confidence has been read, so the order among
        # those is settled; the last confidence level may be cut off (unless all were read).
        cut = rows[-1][2] if rows and not complete else None
        settled = [row for row in rows if complete or _below(row[2], cut)]
        current = queries.current_proposals(store, [row[1] for row in settled])
        passed.assigned.load(row[1] for row in settled)
        candidates = [
            (rid, pid, confidence)
            for pid, rid, confidence in settled
            if current.get(rid, (None,))[0] == pid and rid not in passed
        ]
        if candidates:
            found = _first_in_order(store, candidates, question)
            if found is not None:
                return found
        if complete:
            return None
        limit *= 2
    return None


def _below(confidence: float | None, cut: float | None) -> bool:
    if cut is None:
        return False  # NULL sorts first: a NULL cut means nothing is settled yet
    return confidence is None or confidence < cut


def _first_in_order(
    store: Store, candidates: Iterable[tuple[str, int, float | None]], question: str | None
) -> QueueEntry | None:
    by_id = {rid: (pid, confidence) for rid, pid, confidence in candidates}
    rows = queries.response_rows(store, list(by_id))
    if question is not None:
        rows = [row for row in rows if row[2] == question]
    if not rows:
        return None
    keyed = [
        (by_id[rid][1] if by_id[rid][1] is not None else -1.0, rowid, rid, asked, tags)
        for rowid, rid, asked, tags in rows
    ]
    _key, rowid, rid, asked, tags = min(keyed, key=lambda row: (row[0], row[1]))
    return QueueEntry(rid, rowid - 1, asked, tags, *by_id[rid])


def _by_import(store: Store, passed: _Passed, question: str | None) -> QueueEntry | None:
    """The first unreviewed response (to ``question``, if given) in import order."""
    after = 0
    while True:
        rows = queries.responses_from(store, after, _FIRST_BATCH)
        if not rows:
            return None
        passed.assigned.load(row[1] for row in rows)
        for rowid, rid, asked, tags in rows:
            if rid not in passed and question in (None, asked):
                proposal = queries.current_proposals(store, [rid]).get(rid, (None, None))
                return QueueEntry(rid, rowid - 1, asked, tags, *proposal)
        after = rows[-1][0]


def deferred_first_item(
    store: Store,
    reviewer: str,
    order: str,
    defer_above: int | None = DEFER_INDEX_ABOVE,
    skip: Container[str] = (),
    question: str | None = None,
) -> FirstItem | None:
    """:func:`first_item` for a project of more than ``defer_above`` responses in a file
    (another thread must be able to open it); else None: build the index at once."""
    if defer_above is None or not store.path.is_file():
        return None
    if queries.response_count(store) <= defer_above:
        return None
    return first_item(store, reviewer, order, skip, question)


def first_item(
    store: Store,
    reviewer: str,
    order: str,
    skip: Container[str] = (),
    question: str | None = None,
) -> FirstItem | None:
    """The item the full index would show first for ``reviewer`` (no filter, or only the
    answers to ``question``; passing over the ids in ``skip`` as :func:`next_unreviewed`
    does), with the reviewer's progress counts; None when that cannot be told without
    the index."""
    total = queries.response_count(store)
    touched = _states(store, reviewer)
    assigned = _Assigned(store)  # read batch by batch, for the ids looked at
    passed = _Passed(touched, reviewer, skip, assigned)
    if order == "import":
        entry = _by_import(store, passed, question)
    elif order == "confidence" and queries.every_response_proposed(store, total):
        entry = _by_confidence(store, passed, question)
    else:
        return None
    if entry is None:
        return None
    apply_decisions(entry, queries.decisions_of(store, entry.response_id))
    entry.assigned, entry.assigned_blind = assigned.get(entry.response_id) or ((), False)
    counted = ReviewIndex(store, load=False)
    counted.entries = list(touched.values())
    return FirstItem(entry, dataclasses.replace(progress(counted, reviewer), total=total))
