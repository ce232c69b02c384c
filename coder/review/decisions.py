"""Deciding one item: what the review screen shows, writing a decision, undo, bulk accept.

Decisions are append-only (``Store.add_decision``): correcting, skipping and undoing
all add rows; the proposal is never changed. An undo is a decision with
``action='undo'`` that points at the decision it cancels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from coder import review_queries as queries
from coder.review.index import (
    QueueEntry,
    ReviewerState,
    ReviewIndex,
    advance_state,
    canonical_labels,
    same_labels,
)
from coder.store import Store, StoredDecision, StoredProposal, decision_from_row
from schemas import Labels, Proposal, Response

REASON_CODES: dict[str, str] = {
    "group": "Group action (queue)",
    "wrong_theme": "Wrong theme",
    "missed_theme": "Missed theme",
    "wrong_stance": "Wrong stance",
    "not_relevant": "Not relevant",
    "wrong_question": "Wrong question",
    "other": "Other",
}


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
        advance_state(state, decision_id, action, labels_json)
        index.last_decision_id = decision_id
    return decision_id


def undoable_decision(store: Store, decision_id: int) -> StoredDecision | None:
    """The decision, unless it is an undo itself or already undone."""
    row = queries.decision_row(store, decision_id)
    if row is None or row["action"] == "undo":
        return None
    if queries.is_undone(store, row["response_id"], decision_id):
        return None
    return decision_from_row(row)


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
