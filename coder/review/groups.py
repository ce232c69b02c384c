"""Group actions: one change (accept, exclude, a stance, a theme) to every answer shown."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from coder.review.decisions import undoable_decision
from coder.review.index import REVIEWED, QueueEntry, ReviewIndex, canonical_labels, same_labels
from coder.store import Store
from schemas import Codebook, Labels

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
