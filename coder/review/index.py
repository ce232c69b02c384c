"""The review queue's index: every response's entry and each reviewer's state on it.

Built with a couple of SQL queries at start-up (ids, question, tags, confidence, proposed
theme codes and each reviewer's status) and kept in step with the decisions table, so
the TUI never has to load every row into widgets.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coder import review_queries as queries
from coder.errors import CoderError
from coder.store import Store

if TYPE_CHECKING:  # type hints only: `coder status` must not import pydantic
    from schemas import Codebook, Labels

# Statuses of an item for one reviewer. 'flagged' is not a status of its own: an item
# is flagged as a quote on top of its status (the queue filter treats it as one).
STATUSES = ("unreviewed", "accepted", "corrected", "adjudicated", "skipped")
REVIEWED = frozenset({"accepted", "corrected", "adjudicated"})
LABELLING_ACTIONS = frozenset(
    {"accept", "bulk_accept", "correct", "adjudicate", "flag_quote", "unflag_quote"}
)
_STATUS_OF_ACTION = {
    "accept": "accepted",
    "bulk_accept": "accepted",
    "correct": "corrected",
    "adjudicate": "adjudicated",
}


@dataclass(slots=True)
class ReviewerState:
    """One reviewer's position on one response, after undos."""

    status: str = "unreviewed"
    labels_json: str | None = None  # the labelling decision in force (canonical JSON)
    decision_id: int | None = None
    flagged: bool = False


@dataclass(slots=True)
class QueueEntry:
    """One response in the queue: only what ordering, filters and the table need."""

    response_id: str
    position: int  # import order
    question: str | None
    tags_json: str | None  # parsed only when shown or filtered (start-up time)
    proposal_id: int | None
    confidence: float | None
    reviewers: dict[str, ReviewerState] = field(default_factory=dict)
    # Who is assigned this answer (coder/assign.py; empty: nobody), and whether blind to the model.
    assigned: tuple[str, ...] = ()
    assigned_blind: bool = False

    def assigned_elsewhere(self, reviewer: str) -> bool:
        """True when the answer is assigned, and not to ``reviewer``."""
        return bool(self.assigned) and reviewer not in self.assigned

    @property
    def tags(self) -> list[str]:
        return json.loads(self.tags_json) if self.tags_json else []

    def state(self, reviewer: str) -> ReviewerState:
        return self.reviewers.get(reviewer) or ReviewerState()

    def status(self, reviewer: str) -> str:
        state = self.reviewers.get(reviewer)
        return state.status if state else "unreviewed"

    def disagreement(self) -> bool:
        """True when two reviewers' labels in force differ (quote flags aside)."""
        labels = {
            comparable_labels(state.labels_json)
            for state in self.reviewers.values()
            if state.status in REVIEWED and state.labels_json
        }
        return len(labels) > 1


def comparable_labels(labels_json: str | None) -> str | None:
    """Labels JSON as reviewers' labels are compared: quote flag dropped, themes sorted."""
    if labels_json is None:
        return None
    data = json.loads(labels_json)
    data.pop("quote", None)
    data["themes"] = sorted(data.get("themes") or [])
    return json.dumps(data, sort_keys=True)


def canonical_labels(labels: Labels) -> Labels:
    """Labels with themes de-duplicated and sorted, so equal labels compare equal."""
    return labels.model_copy(update={"themes": sorted(set(labels.themes))})


def same_labels(first: Labels, second: Labels) -> bool:
    """Equal as coding decisions: the quote flag is not a label of the response."""
    first, second = canonical_labels(first), canonical_labels(second)
    keys = ("question", "stance", "relevant", "themes")
    return all(getattr(first, key) == getattr(second, key) for key in keys)


def apply_decisions(entry: QueueEntry, rows: Sequence[Sequence[Any]]) -> None:
    """Recompute every reviewer's state of ``entry`` from all its decisions (oldest first)."""
    undone = {row[5] for row in rows if row[5] is not None}
    entry.reviewers.clear()
    for decision_id, _response_id, reviewer, action, labels_json, _undoes in rows:
        if action == "undo" or decision_id in undone:
            continue
        state = entry.reviewers.setdefault(reviewer, ReviewerState())
        advance_state(state, decision_id, action, labels_json)


def advance_state(
    state: ReviewerState, decision_id: int, action: str, labels_json: str | None
) -> None:
    """Move one reviewer's state on past one more decision (not an undo)."""
    if action in _STATUS_OF_ACTION:
        state.status = _STATUS_OF_ACTION[action]
        state.labels_json = labels_json
        state.decision_id = decision_id
        state.flagged = bool(labels_json and json.loads(labels_json).get("quote"))
    elif action in ("flag_quote", "unflag_quote"):
        state.flagged = action == "flag_quote"
        state.labels_json = labels_json
        state.decision_id = decision_id
    elif action == "skip" and state.status in ("unreviewed", "skipped"):
        state.status = "skipped"


class ReviewIndex:
    """Every response's queue entry, kept in step with the decisions table."""

    def __init__(self, store: Store, *, load: bool = True) -> None:
        self.store = store
        self.entries: list[QueueEntry] = []
        self.by_id: dict[str, QueueEntry] = {}
        self.last_decision_id = 0
        self.assignment_mark = -1
        if load:
            self.load()

    @classmethod
    def read(cls, path: Path) -> ReviewIndex:
        """Build the index on a connection of its own, closed when done: a worker thread
        cannot use the app's connection. :meth:`attach` it to a store before use."""
        store = Store(path)
        try:
            return cls(store)
        finally:
            store.close()

    def attach(self, store: Store) -> set[str]:
        """Use ``store`` from now on and fold in what changed since the index was read."""
        self.store = store
        return self.sync()

    def load(self) -> None:
        """Read the whole index: one scan of responses, proposals and decisions each."""
        latest: dict[str, tuple[int, float | None]] = {}
        for proposal_id, response_id, confidence in queries.ok_proposals(self.store):
            latest[response_id] = (proposal_id, confidence)
        missing = (None, None)
        entries = [
            QueueEntry(rid, position, question, tags, *latest.get(rid, missing))
            for position, (rid, question, tags) in enumerate(queries.response_keys(self.store))
        ]
        self.entries = entries
        self.by_id = {entry.response_id: entry for entry in entries}
        self.assignment_mark = -1
        self._load_assignments()
        self.last_decision_id = 0
        self.sync()

    def _load_assignments(self) -> set[str]:
        """Read who is assigned what (coder/assign.py) if it changed since the last read;
        returns the ids whose assignment changed. A session open while the lead runs
        `coder assign` sees the new split at its next sync."""
        mark = queries.assignments_mark(self.store)
        if mark == self.assignment_mark:
            return set()
        self.assignment_mark = mark
        before = {e.response_id: (e.assigned, e.assigned_blind) for e in self.entries if e.assigned}
        for response_id in before:
            self.by_id[response_id].assigned = ()
            self.by_id[response_id].assigned_blind = False
        for response_id, reviewer, blind in queries.assignments_in_force(self.store):
            if (entry := self.by_id.get(response_id)) is not None:
                entry.assigned = (*entry.assigned, reviewer)
                entry.assigned_blind = bool(blind)
        after = {e.response_id: (e.assigned, e.assigned_blind) for e in self.entries if e.assigned}
        return {rid for rid in before.keys() | after.keys() if before.get(rid) != after.get(rid)}

    def proposed_themes(self, entries: Sequence[QueueEntry]) -> dict[str, tuple[str, ...]]:
        """Proposed theme codes of a few entries (for a table page)."""
        ids = [entry.proposal_id for entry in entries if entry.proposal_id is not None]
        return queries.proposed_themes(self.store, ids)

    def proposed_stances(self, entries: Sequence[QueueEntry]) -> dict[str, str | None]:
        """Proposed stance of a few entries (for a table page)."""
        ids = [entry.proposal_id for entry in entries if entry.proposal_id is not None]
        return queries.proposed_stances(self.store, ids)

    def with_proposed_theme(self, theme: str) -> set[str]:
        """Response ids whose current proposal has ``theme``."""
        return {
            rid
            for pid, rid in queries.proposals_with_theme(self.store, theme)
            if (entry := self.by_id.get(rid)) is not None and entry.proposal_id == pid
        }

    def sync(self) -> set[str]:
        """Fold in decisions added since the last sync (by anyone), and a new assignment
        run. Returns changed ids."""
        reassigned = self._load_assignments()
        rows = queries.decisions_after(self.store, self.last_decision_id)
        if not rows:
            return reassigned
        self.last_decision_id = rows[-1][0]
        if any(row[5] is not None for row in rows):
            # An undo can cancel an older decision: recompute the affected responses fully.
            changed = {row[1] for row in rows}
            for response_id in changed:
                self.refresh(response_id)
            return changed | reassigned
        changed = set(reassigned)
        for decision_id, response_id, reviewer, action, labels_json, _undoes in rows:
            entry = self.by_id.get(response_id)
            if entry is None:
                continue
            state = entry.reviewers.setdefault(reviewer, ReviewerState())
            advance_state(state, decision_id, action, labels_json)
            changed.add(response_id)
        return changed

    def refresh(self, response_id: str) -> QueueEntry:
        """Recompute one entry from its decisions (after an undo, or another process)."""
        entry = self.by_id[response_id]
        apply_decisions(entry, queries.decisions_of(self.store, response_id))
        return entry

    def reviewers(self) -> list[str]:
        """Everyone who has made a decision in this project."""
        names: set[str] = set()
        for entry in self.entries:
            names.update(entry.reviewers)
        return sorted(names)


def codebook_or_error(store: Store) -> tuple[int, Codebook]:
    """The project's latest codebook, or a CoderError saying how to add one."""
    try:
        return store.codebook()
    except LookupError as error:  # NoCodebookError names the file already
        raise CoderError(str(error)) from error
