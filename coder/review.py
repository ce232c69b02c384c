"""Reviewing logic shared by the review TUI and the CLI (no UI code here).

A reviewer works through a *queue*: every response with its current proposal and
the reviewer's own status. The queue is an in-memory index built with a couple of
SQL queries at start-up (ids, question, tags, confidence, proposed theme codes and
each reviewer's status), so the TUI never has to load every row into widgets.
Response texts and full proposals are read one at a time, when shown.

Decisions are append-only (``Store.add_decision``): correcting, skipping and undoing
all add rows; the proposal is never changed. An undo is a decision with
``action='undo'`` that points at the decision it cancels.
"""

from __future__ import annotations

import json
import operator
import re
import shlex
import time
from collections import Counter
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from coder import review_queries as queries
from coder.store import Store, StoredDecision, StoredProposal, _decision_from_row
from schemas import Codebook, Labels, Proposal, Response

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

REASON_CODES: dict[str, str] = {
    "group": "Group action (queue)",
    "wrong_theme": "Wrong theme",
    "missed_theme": "Missed theme",
    "wrong_stance": "Wrong stance",
    "not_relevant": "Not relevant",
    "wrong_question": "Wrong question",
    "other": "Other",
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
            _strip_quote(state.labels_json)
            for state in self.reviewers.values()
            if state.status in REVIEWED and state.labels_json
        }
        return len(labels) > 1


def _strip_quote(labels_json: str | None) -> str | None:
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


# --- the index -----------------------------------------------------------------------



def _apply_decisions(entry: QueueEntry, rows: Iterable[Sequence[Any]], undone: set[int]) -> None:
    """Recompute every reviewer's state of ``entry`` from its decisions (oldest first)."""
    entry.reviewers.clear()
    for decision_id, _response_id, reviewer, action, labels_json, _undoes in rows:
        if action == "undo" or decision_id in undone:
            continue
        state = entry.reviewers.setdefault(reviewer, ReviewerState())
        _step(state, decision_id, action, labels_json)


def _step(state: ReviewerState, decision_id: int, action: str, labels_json: str | None) -> None:
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

    def __init__(self, store: Store) -> None:
        self.store = store
        self.entries: list[QueueEntry] = []
        self.by_id: dict[str, QueueEntry] = {}
        self.last_decision_id = 0
        self.load()

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
            _step(state, decision_id, action, labels_json)
            changed.add(response_id)
        return changed

    def refresh(self, response_id: str) -> QueueEntry:
        """Recompute one entry from its decisions (after an undo, or another process)."""
        entry = self.by_id[response_id]
        rows = queries.decisions_of(self.store, response_id)
        undone = {row[5] for row in rows if row[5] is not None}
        _apply_decisions(entry, rows, undone)
        return entry

    def reviewers(self) -> list[str]:
        """Everyone who has made a decision in this project."""
        names: set[str] = set()
        for entry in self.entries:
            names.update(entry.reviewers)
        return sorted(names)


# --- ordering and filters -----------------------------------------------------------


@dataclass
class QueueFilter:
    """What the queue shows. Built from a filter string by :func:`parse_filter`."""

    question: str | None = None
    theme: str | None = None
    status: str | None = None  # one of STATUSES, 'flagged' or 'reviewed'
    tag: str | None = None
    reviewer: str | None = None  # items this reviewer has decided
    disagreement: bool = False
    min_confidence: float | None = None
    max_confidence: float | None = None
    same: str | None = None  # answers whose text equals this one (case, edge punctuation aside)
    text: str = ""

    def describe(self) -> str:
        """The filter as the string that would produce it."""
        parts = []
        for key in ("question", "theme", "status", "tag", "reviewer"):
            value = getattr(self, key)
            if value:
                parts.append(f"{key}:{value}")
        if self.disagreement:
            parts.append("disagree")
        if self.min_confidence is not None:
            parts.append(f"conf>={self.min_confidence:g}")
        if self.max_confidence is not None:
            parts.append(f"conf<={self.max_confidence:g}")
        if self.same is not None:
            parts.append("same:" + (self.same if self.same.isalnum() else json.dumps(self.same)))
        if self.text:
            parts.append(self.text)
        return " ".join(parts)


_FILTER_TOKEN = re.compile(r"^(question|q|theme|t|status|s|tag|reviewer|r|same):(.+)$")
_CONF_TOKEN = re.compile(r"^conf(?:idence)?(<=|>=|<|>)([0-9.]+)$")


def parse_filter(text: str) -> QueueFilter:
    """Parse ``status:unreviewed question:H1 theme:cost tag:x reviewer:ana disagree conf<0.6 words``.

    Unknown words become a text search. Keys may be shortened to their first letter.
    ``same:yes`` or ``same:"strongly agree"`` keeps the answers that say exactly that.
    """
    result = QueueFilter()
    words = []
    aliases = {"q": "question", "t": "theme", "s": "status", "r": "reviewer"}
    try:
        # Quotes group words, so `same:"not really"` is one token.
        tokens = shlex.split(text)
    except ValueError:  # an unbalanced quote: read the words as typed
        tokens = text.split()
    for token in tokens:
        match = _FILTER_TOKEN.match(token)
        conf = _CONF_TOKEN.match(token)
        if match and match.group(1) == "same":
            result.same = normalised_answer(match.group(2))
        elif match:
            key = aliases.get(match.group(1), match.group(1))
            setattr(result, key, match.group(2).lstrip("#"))
        elif conf:
            value = float(conf.group(2))
            if conf.group(1).startswith(">"):
                result.min_confidence = value
            else:
                result.max_confidence = value
        elif token in ("disagree", "disagreement"):
            result.disagreement = True
        else:
            words.append(token)
    result.text = " ".join(words)
    return result


def order_entries(entries: Sequence[QueueEntry], order: str = "confidence") -> list[QueueEntry]:
    """Review order: 'confidence' (least confident first, the default) or 'import'."""
    # attrgetter and a list's __getitem__ are C calls: at 100k entries this is a few tens
    # of ms instead of the 130 ms a (confidence, position) tuple key per entry cost.
    by_position = sorted(entries, key=operator.attrgetter("position"))  # O(n) when sorted
    if order == "import":
        return by_position
    keys = [e.confidence if e.confidence is not None else -1.0 for e in by_position]
    # A stable sort of position-ordered entries by confidence keeps ties in import order.
    return [by_position[i] for i in sorted(range(len(keys)), key=keys.__getitem__)]


#: Characters that do not make two short answers different ("Yes." and "yes!").
_EDGE_CHARACTERS = " .!?,;:-\t\r\n\"'"


def normalised_answer(text: str) -> str:
    """An answer as the ``same:`` filter compares it: lower case, edge punctuation removed."""
    return text.strip(_EDGE_CHARACTERS).lower()


def same_text_matches(store: Store, text: str) -> set[str]:
    """Ids of responses that say exactly ``text`` (case and edge punctuation aside)."""
    return queries.responses_saying(store, text, _EDGE_CHARACTERS)


def text_matches(store: Store, text: str, limit: int | None = None) -> set[str]:
    """Ids of responses whose text or id contains ``text`` (case-insensitive)."""
    return queries.responses_containing(store, text, limit)


def filter_entries(
    index: ReviewIndex,
    entries: Sequence[QueueEntry],
    queue_filter: QueueFilter,
    reviewer: str,
) -> list[QueueEntry]:
    """The entries that pass ``queue_filter``, in their given order."""
    f = queue_filter
    text_ids = text_matches(index.store, f.text) if f.text else None
    same_ids = same_text_matches(index.store, f.same) if f.same is not None else None
    theme_ids = index.with_proposed_theme(f.theme) if f.theme else set()
    result = []
    for entry in entries:
        if f.question and entry.question != f.question:
            continue
        if f.tag and (
            not entry.tags_json or f.tag.lower() not in (tag.lower() for tag in entry.tags)
        ):
            continue
        if f.min_confidence is not None and (entry.confidence or 0.0) < f.min_confidence:
            continue
        if f.max_confidence is not None and (entry.confidence or 0.0) > f.max_confidence:
            continue
        state = entry.reviewers.get(reviewer)
        if f.status:
            status = state.status if state else "unreviewed"
            if f.status == "flagged":
                if not (state and state.flagged):
                    continue
            elif f.status == "reviewed":
                if status not in REVIEWED:
                    continue
            elif status != f.status:
                continue
        if f.theme:
            if state and state.labels_json:
                if f.theme not in (json.loads(state.labels_json).get("themes") or ()):
                    continue
            elif entry.response_id not in theme_ids:
                continue
        if f.reviewer and f.reviewer not in entry.reviewers:
            continue
        if f.disagreement and not entry.disagreement():
            continue
        if text_ids is not None and entry.response_id not in text_ids:
            continue
        if same_ids is not None and entry.response_id not in same_ids:
            continue
        result.append(entry)
    return result


# --- progress -----------------------------------------------------------------------


@dataclass
class Progress:
    """How far a reviewer has got."""

    total: int
    reviewed: int
    accepted: int
    corrected: int
    skipped: int
    flagged: int
    session_decisions: int
    session_seconds: float

    @property
    def acceptance_rate(self) -> float | None:
        """Share of the model's proposals accepted unchanged (None before any review)."""
        judged = self.accepted + self.corrected
        return self.accepted / judged if judged else None

    @property
    def rate_per_hour(self) -> float | None:
        if self.session_decisions == 0 or self.session_seconds <= 0:
            return None
        return self.session_decisions / self.session_seconds * 3600

    def summary(self) -> str:
        parts = [f"{self.reviewed:,}/{self.total:,} reviewed"]
        rate = self.rate_per_hour
        if rate is not None:
            parts.append(f"{rate:,.0f}/h this session")
        acceptance = self.acceptance_rate
        if acceptance is not None:
            parts.append(f"model accepted {acceptance:.0%}")
        if self.skipped:
            parts.append(f"{self.skipped:,} skipped")
        if self.flagged:
            parts.append(f"{self.flagged:,} quote" + ("" if self.flagged == 1 else "s"))
        return " · ".join(parts)


def progress(
    index: ReviewIndex, reviewer: str, session_decisions: int = 0, session_start: float = 0.0
) -> Progress:
    """Counts for the status bar (a pass over the index: a few ms at 100k)."""
    counts: Counter[str] = Counter()
    flagged = 0
    for entry in index.entries:
        state = entry.reviewers.get(reviewer)
        if state is None:
            continue
        counts[state.status] += 1
        flagged += state.flagged
    return Progress(
        total=len(index.entries),
        reviewed=sum(counts[status] for status in REVIEWED),
        accepted=counts["accepted"],
        corrected=counts["corrected"],
        skipped=counts["skipped"],
        flagged=flagged,
        session_decisions=session_decisions,
        session_seconds=(time.monotonic() - session_start) if session_start else 0.0,
    )


# --- one item -----------------------------------------------------------------------


@dataclass
class ReviewItem:
    """Everything the review screen shows for one response."""

    response: Response
    proposal: StoredProposal | None
    labels: Labels  # the labels in force for this reviewer (decided, or as proposed)
    status: str
    flagged: bool
    notes: list[tuple[str, str]] = field(default_factory=list)  # (reviewer, note), not undone

    @property
    def proposed(self) -> Proposal | None:
        return self.proposal.proposal if self.proposal else None


def proposed_labels(response: Response, proposal: Proposal | None, blind: bool) -> Labels:
    """The starting labels of an undecided item: the proposal's, or blank when blind."""
    if proposal is None or blind:
        return Labels(question=response.question)
    return canonical_labels(Labels.from_proposal(proposal))


def load_item(store: Store, entry: QueueEntry, reviewer: str, blind: bool = False) -> ReviewItem:
    """Read one response and its current proposal (two primary-key lookups)."""
    response = store.response(entry.response_id)
    proposal = store.proposal(entry.proposal_id) if entry.proposal_id is not None else None
    if reviewer in entry.assigned and len(entry.assigned) > 1:
        # Double coding is blind to the other coder (notes), and to the model if assigned so.
        blind = blind or entry.assigned_blind
        notes_of_others = False
    else:
        notes_of_others = not blind
    if blind and reviewer in entry.assigned and entry.assigned_blind:
        proposal = None  # the screen cannot show what the item does not carry
    state = entry.state(reviewer)
    if state.labels_json:
        labels = Labels.model_validate_json(state.labels_json)
    else:
        labels = proposed_labels(response, proposal.proposal if proposal else None, blind)
    notes = [
        (name, note)
        for name, note in queries.notes_in_force(store, entry.response_id)
        if notes_of_others or name == reviewer
    ]
    return ReviewItem(
        response=response,
        proposal=proposal,
        labels=labels,
        status=state.status,
        flagged=state.flagged,
        notes=notes,
    )


def decision_action(item: ReviewItem, labels: Labels, blind: bool) -> str:
    """'accept' when the labels are the model's proposal unchanged, else 'correct'."""
    proposal = item.proposed
    if blind or proposal is None:
        return "correct"
    return "accept" if same_labels(labels, Labels.from_proposal(proposal)) else "correct"


def guess_reason(item: ReviewItem, labels: Labels) -> str | None:
    """The most likely reason code for a correction (pre-selected in the modal)."""
    proposal = item.proposed
    if proposal is None:
        return None
    if proposal.relevant != labels.relevant:
        return "not_relevant"
    if proposal.question != labels.question:
        return "wrong_question"
    proposed = set(proposal.theme_codes)
    decided = set(labels.themes)
    if proposed - decided:
        return "wrong_theme"
    if decided - proposed:
        return "missed_theme"
    if proposal.stance != labels.stance:
        return "wrong_stance"
    return None


def record_decision(
    store: Store,
    index: ReviewIndex,
    *,
    response_id: str,
    reviewer: str,
    action: str,
    labels: Labels | None = None,
    reason_code: str | None = None,
    note: str | None = None,
    undoes: int | None = None,
) -> int:
    """Append a decision (committed at once) and update the index entry."""
    entry = index.by_id[response_id]
    decision_id = store.add_decision(
        response_id=response_id,
        reviewer=reviewer,
        action=action,
        labels=canonical_labels(labels) if labels is not None else None,
        proposal_id=entry.proposal_id,
        reason_code=reason_code,
        note=note,
        undoes=undoes,
    )
    if undoes is not None or decision_id != index.last_decision_id + 1:
        # An undo, or someone else wrote in between: fold in everything since the last
        # sync (theirs and ours), so no one's decision is skipped.
        index.sync()
    else:
        state = entry.reviewers.setdefault(reviewer, ReviewerState())
        labels_json = canonical_labels(labels).model_dump_json() if labels is not None else None
        _step(state, decision_id, action, labels_json)
        index.last_decision_id = decision_id
    return decision_id


def undoable_decision(store: Store, decision_id: int) -> StoredDecision | None:
    """The decision, unless it is an undo itself or already undone."""
    row = queries.decision_row(store, decision_id)
    if row is None or row["action"] == "undo":
        return None
    if queries.is_undone(store, row["response_id"], decision_id):
        return None
    return _decision_from_row(row)


def undo(store: Store, index: ReviewIndex, decision_id: int, reviewer: str) -> str | None:
    """Cancel a decision by appending an 'undo' that points at it. Returns its response id."""
    decision = undoable_decision(store, decision_id)
    if decision is None:
        return None
    record_decision(
        store,
        index,
        response_id=decision.response_id,
        reviewer=reviewer,
        action="undo",
        undoes=decision.id,
    )
    return decision.response_id


def next_unreviewed(
    order: Sequence[QueueEntry],
    reviewer: str,
    start: int = 0,
    wrap: bool = True,
    skip: Container[str] = (),
) -> int | None:
    """Position in ``order`` of the first unreviewed item at or after ``start``.

    Items in ``skip`` (response ids another session is on: coder/leases.py) are passed over,
    and so are answers assigned to other reviewers (coder/assign.py): a reviewer's next item
    is one of theirs or one assigned to nobody. A project without assignments is unaffected.
    """
    count = len(order)
    for offset in range(count if wrap else max(count - start, 0)):
        position = (start + offset) % count
        state = order[position].reviewers.get(reviewer)
        if order[position].assigned_elsewhere(reviewer):
            continue
        if (state is None or state.status == "unreviewed") and (
            not skip or order[position].response_id not in skip
        ):
            return position
    return None


# --- bulk accept --------------------------------------------------------------------


def bulk_accept_candidates(
    entries: Sequence[QueueEntry], reviewer: str, threshold: float
) -> list[QueueEntry]:
    """Unreviewed items with a proposal at or above ``threshold`` confidence."""
    return [
        entry
        for entry in entries
        if entry.proposal_id is not None
        and entry.confidence is not None
        and entry.confidence >= threshold
        and entry.status(reviewer) in ("unreviewed", "skipped")
    ]


def bulk_accept(
    store: Store, index: ReviewIndex, entries: Sequence[QueueEntry], reviewer: str
) -> int:
    """Accept the proposals of ``entries`` in one transaction ('bulk_accept' decisions)."""
    proposals = store.current_proposals([entry.response_id for entry in entries])
    stamp_rows = []
    for entry in entries:
        stored = proposals.get(entry.response_id)
        if stored is None or stored.proposal is None:
            continue
        labels = canonical_labels(Labels.from_proposal(stored.proposal))
        stamp_rows.append((entry, stored.id, labels))
    with store.db.atomic():
        for entry, proposal_id, labels in stamp_rows:
            store.add_decision(
                response_id=entry.response_id,
                reviewer=reviewer,
                action="bulk_accept",
                labels=labels,
                proposal_id=proposal_id,
            )
    index.sync()
    return len(stamp_rows)


# --- sessions -----------------------------------------------------------------------

#: A pause longer than this between one reviewer's decisions starts a new session.
SESSION_GAP_SECONDS = 30 * 60


@dataclass(frozen=True)
class ReviewerSession:
    """One reviewer's stretch of work, read back from the decisions' times."""

    reviewer: str
    started: str
    ended: str
    decisions: int
    accepted: int  # accept / bulk_accept: the model's proposal unchanged
    corrected: int

    @property
    def seconds(self) -> float:
        return (_parse_time(self.ended) - _parse_time(self.started)).total_seconds()

    def describe(self) -> str:
        """One line, e.g. 'ann 2026-11-29 10:02-10:40 · 85 decisions (134/h) · 71% accepted'."""
        start, end = _parse_time(self.started), _parse_time(self.ended)
        when = f"{start:%Y-%m-%d %H:%M}-{end:%H:%M}"
        parts = [f"{self.reviewer} {when}", f"{self.decisions:,} decisions"]
        if self.seconds >= 60:
            parts[-1] += f" ({self.decisions / self.seconds * 3600:,.0f}/h)"
        judged = self.accepted + self.corrected
        if judged:
            parts.append(f"{self.accepted / judged:.0%} accepted unchanged")
        return " · ".join(parts)


def _parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def reviewer_sessions(
    store: Store, gap_seconds: float = SESSION_GAP_SECONDS
) -> list[ReviewerSession]:
    """Each reviewer's sessions, oldest first (a gap of ``gap_seconds`` splits them)."""
    rows = queries.decision_times(store)
    sessions: list[ReviewerSession] = []
    current: dict[str, Any] | None = None

    def close() -> None:
        if current is not None:
            sessions.append(ReviewerSession(**current))

    for reviewer, action, created_at in rows:
        stamp = _parse_time(created_at)
        if (
            current is None
            or current["reviewer"] != reviewer
            or (stamp - _parse_time(current["ended"])).total_seconds() > gap_seconds
        ):
            close()
            current = {
                "reviewer": reviewer,
                "started": created_at,
                "ended": created_at,
                "decisions": 0,
                "accepted": 0,
                "corrected": 0,
            }
        current["ended"] = created_at
        current["decisions"] += 1
        current["accepted"] += action in ("accept", "bulk_accept")
        current["corrected"] += action == "correct"
    close()
    sessions.sort(key=lambda session: session.started)
    return sessions


def quit_summary(progress: Progress, actions: Counter[str]) -> str:
    """What the reviewer did this session and what is left, printed when the app closes."""
    done = sum(actions.values())
    minutes = progress.session_seconds / 60
    lines = [f"This session: {done:,} decision(s) in {minutes:,.0f} min"]
    rate = progress.rate_per_hour
    if rate is not None and progress.session_seconds >= 60:
        lines[0] += f" ({rate:,.0f}/h)"
    kinds = [
        (actions["accept"] + actions["bulk_accept"], "accepted unchanged"),
        (actions["correct"], "corrected"),
        (actions["skip"], "skipped"),
        (actions["flag_quote"], "flagged as quotes"),
        (actions["note"], "notes"),
        (actions["undo"], "undone"),
    ]
    detail = ", ".join(f"{count:,} {what}" for count, what in kinds if count)
    if detail:
        lines[0] += ": " + detail
    left = progress.total - progress.reviewed
    line = f"Project: {progress.reviewed:,} of {progress.total:,} reviewed, {left:,} left"
    if left and rate and progress.session_seconds >= 60:
        line += f" (about {left / rate:,.1f} h at this pace)"
    lines.append(line + ".")
    return "\n".join(lines)


# --- group actions ------------------------------------------------------------------

#: What a group action can do to every answer shown in the queue.
GROUP_KINDS = {
    "accept": "Accept the model's proposal",
    "not_relevant": "Exclude as not relevant",
    "stance": "Set a stance…",
    "add_theme": "Add a theme…",
    "remove_theme": "Remove a theme…",
}
#: How a confirmation names the change (the value follows).
_GROUP_PHRASES = {
    "stance": "Set the stance to",
    "add_theme": "Add the theme",
    "remove_theme": "Remove the theme",
}


@dataclass(frozen=True)
class GroupChange:
    """One change applied to many answers at once (e.g. every "Yes" gets stance 'resonates')."""

    kind: str  # a key of GROUP_KINDS
    value: str | None = None  # the stance or theme id; the reason for 'not_relevant'

    def describe(self) -> str:
        text = _GROUP_PHRASES.get(self.kind) or GROUP_KINDS[self.kind]
        if self.kind == "not_relevant":
            return text + (f" ({self.value})" if self.value else "")
        return f"{text} {self.value}" if self.value else text

    def applies_to(self, entry: QueueEntry, reviewer: str, codebook: Codebook) -> bool:
        """Whether this change means anything for ``entry`` (Q10 has no stance, etc.)."""
        if self.kind == "accept":
            return entry.proposal_id is not None and entry.status(reviewer) in (
                "unreviewed",
                "skipped",
            )
        if self.kind == "stance":
            return codebook.has_stance(entry.question)
        if self.kind in ("add_theme", "remove_theme"):
            return any(theme.id == self.value for theme in codebook.themes_for(entry.question))
        return True

    def apply(self, labels: Labels) -> Labels:
        """The labels after this change."""
        if self.kind == "not_relevant":
            return labels.model_copy(
                update={"relevant": False, "relevance_reason": self.value, "themes": []}
            )
        if self.kind == "stance":
            return labels.model_copy(update={"stance": self.value})
        themes = set(labels.themes)
        if self.kind == "add_theme" and self.value:
            themes.add(self.value)
            # Coding a theme means the answer is relevant after all.
            return labels.model_copy(
                update={"themes": sorted(themes), "relevant": True, "relevance_reason": None}
            )
        if self.kind == "remove_theme":
            themes.discard(self.value or "")
        return labels.model_copy(update={"themes": sorted(themes)})


def group_candidates(
    entries: Sequence[QueueEntry], reviewer: str, codebook: Codebook, change: GroupChange
) -> list[QueueEntry]:
    """The entries a group change would touch."""
    return [entry for entry in entries if change.applies_to(entry, reviewer, codebook)]


def apply_group(
    store: Store,
    index: ReviewIndex,
    entries: Sequence[QueueEntry],
    reviewer: str,
    change: GroupChange,
    *,
    blind: bool = False,
    actions: Counter[str] | None = None,
) -> list[int]:
    """Write ``change`` for every entry in one transaction. Returns the decision ids.

    ``actions``, when given, counts the actions written (for the session summary).

    Each answer gets its own decision (so traceability and undo stay per answer):
    'accept'/'bulk_accept' when the result is the model's proposal unchanged, else
    'correct' with the reason code 'group'. Answers the change leaves as they are get
    no decision.
    """
    ids = [entry.response_id for entry in entries]
    proposals = store.current_proposals(ids)
    rows: list[tuple[QueueEntry, int | None, str, Labels]] = []
    for entry in entries:
        stored = proposals.get(entry.response_id)
        proposal = stored.proposal if stored is not None and not blind else None
        state = entry.state(reviewer)
        if state.labels_json:
            before = Labels.model_validate_json(state.labels_json)
        elif proposal is not None:
            before = canonical_labels(Labels.from_proposal(proposal))
        else:
            before = Labels(question=entry.question)
        after = canonical_labels(
            Labels.from_proposal(proposal)
            if change.kind == "accept" and proposal
            else change.apply(before)
        )
        if state.status in REVIEWED and same_labels(before, after):
            continue
        proposed = proposal is not None and same_labels(after, Labels.from_proposal(proposal))
        action = "bulk_accept" if proposed else "correct"
        rows.append((entry, stored.id if stored is not None else None, action, after))
    decision_ids = []
    with store.db.atomic():
        for entry, proposal_id, action, labels in rows:
            decision_ids.append(
                store.add_decision(
                    response_id=entry.response_id,
                    reviewer=reviewer,
                    action=action,
                    labels=labels,
                    proposal_id=proposal_id,
                    reason_code="group" if action == "correct" else None,
                )
            )
            if actions is not None:
                actions[action] += 1
    index.sync()
    return decision_ids


def undo_group(store: Store, index: ReviewIndex, decision_ids: Sequence[int], reviewer: str) -> int:
    """Cancel several decisions in one transaction (one undo step). Returns how many."""
    undone = 0
    with store.db.atomic():
        for decision_id in decision_ids:
            decision = undoable_decision(store, decision_id)
            if decision is None:
                continue
            store.add_decision(
                response_id=decision.response_id,
                reviewer=reviewer,
                action="undo",
                undoes=decision.id,
            )
            undone += 1
    index.sync()
    return undone


# --- adjudication -------------------------------------------------------------------


@dataclass
class Disagreement:
    """One response where two reviewers' labels differ."""

    entry: QueueEntry
    labels: dict[str, Labels]  # reviewer -> labels in force


def disagreements(
    index: ReviewIndex, first: str | None = None, second: str | None = None
) -> list[Disagreement]:
    """Items where reviewers differ and no adjudication is in force yet.

    With ``first`` and ``second``, only those two reviewers are compared.
    """
    result = []
    for entry in index.entries:
        if any(state.status == "adjudicated" for state in entry.reviewers.values()):
            continue
        names = [first, second] if first and second else sorted(entry.reviewers)
        states = {
            name: entry.reviewers[name]
            for name in names
            if name in entry.reviewers
            and entry.reviewers[name].status in REVIEWED
            and entry.reviewers[name].labels_json
        }
        if len(states) < 2:
            continue
        distinct = {_strip_quote(state.labels_json) for state in states.values()}
        if len(distinct) > 1:
            labels = {
                name: Labels.model_validate_json(state.labels_json or "{}")
                for name, state in states.items()
            }
            result.append(Disagreement(entry=entry, labels=labels))
    return result


def two_reviewers(index: ReviewIndex, exclude: str | None = None) -> tuple[str, str] | None:
    """The two reviewers with the most reviewed items (the usual pair to adjudicate)."""
    counts: Counter[str] = Counter()
    for entry in index.entries:
        for name, state in entry.reviewers.items():
            if state.status in ("accepted", "corrected") and name != exclude:
                counts[name] += 1
    top = [name for name, _ in counts.most_common(2)]
    return (top[0], top[1]) if len(top) == 2 else None


# --- export -------------------------------------------------------------------------


def export_labels(store: Store, path: str, reviewer: str | None = None) -> int:
    """Write the labels in force to a JSONL file (one object per response). Returns rows."""
    from coder.atomic import check_output_path, write_atomically

    final = store.final_labels(reviewer)

    def write(temporary: Path) -> None:
        with temporary.open("w", encoding="utf-8") as handle:
            for response_id, decision in final.items():
                row = {
                    "response_id": response_id,
                    "reviewer": decision.reviewer,
                    "action": decision.action,
                    "decision_id": decision.id,
                    "proposal_id": decision.proposal_id,
                    **(decision.labels.model_dump() if decision.labels else {}),
                }
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    check_output_path(Path(path), protect=[Path(store.path)])
    write_atomically(Path(path), write)
    return len(final)


def codebook_or_error(store: Store) -> tuple[int, Codebook]:
    """The project's latest codebook, or a CoderError saying how to add one."""
    from coder.errors import CoderError

    try:
        return store.codebook()
    except LookupError as error:  # NoCodebookError names the file already
        raise CoderError(str(error)) from error
