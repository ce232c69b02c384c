"""Each response with the labels that count for it: reviewed, else the model's, else none.

A response counts with its reviewed labels (``Store.final_labels()``) and, where nobody
has reviewed it yet, with the model's proposal (``Store.current_proposals()``); read a
batch at a time, so memory grows with a batch, not the project.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from coder.report.data import NO_QUESTION, LabelSource
from coder.store import Store, StoredDecision, StoredProposal
from schemas import Labels, Response


@dataclass
class CodedResponse:
    """A response with the labels that count for it, and where they came from."""

    response: Response
    labels: Labels | None
    source: LabelSource
    proposal: StoredProposal | None = None
    decision: StoredDecision | None = None
    notes: list[str] = field(default_factory=list)
    #: The proposal's confidence, kept when the proposal itself is dropped (:func:`_slim`).
    kept_confidence: float | None = None

    @property
    def question(self) -> str:
        """The question the response is counted under (reviewed > proposed > imported)."""
        if self.labels is not None and self.labels.question:
            return self.labels.question
        return self.response.question or NO_QUESTION

    @property
    def confidence(self) -> float | None:
        return self.proposal.confidence if self.proposal is not None else self.kept_confidence

    @property
    def person(self) -> str:
        """Who answered: the respondent id, else the response itself (one person each)."""
        return person_key(self.response)

    def evidence(self, code: str) -> str | None:
        """The model's evidence quote for ``code``, if its proposal gave one."""
        if self.proposal is None or self.proposal.proposal is None:
            return None
        for assignment in self.proposal.proposal.themes:
            if assignment.code == code and assignment.evidence:
                return assignment.evidence
        return None


#: Responses read from the store at a time by :func:`iter_coded`.
CODED_BATCH = 2000


def collect_coded(store: Store) -> list[CodedResponse]:
    """Every response in import order with its labels in force (reviewed, else proposed)."""
    return list(iter_coded(store))


def iter_coded(store: Store, batch_size: int = CODED_BATCH) -> Iterator[CodedResponse]:
    """:func:`collect_coded` one batch of responses at a time.

    Each batch reads only its own responses' proposals and decisions, so an export of a
    500,000-response project holds a batch in memory, not the project.
    """
    for batch in store.response_batches(batch_size):
        ids = [response.id for response in batch]
        finals = store.final_labels(response_ids=ids)
        reviewed = store.reviewed_response_ids(ids) if finals else set()
        proposals = store.current_proposals(ids)
        notes: dict[str, list[str]] = {}
        for noted in store.decisions(response_ids=ids):
            if noted.note:
                notes.setdefault(noted.response_id, []).append(f"{noted.reviewer}: {noted.note}")
        for response in batch:
            decision = finals.get(response.id)
            proposal = proposals.get(response.id)
            if decision is not None and decision.labels is not None:
                labels: Labels | None = decision.labels
                # A quote flag on an unreviewed response carries the model's labels.
                source: LabelSource = "reviewed" if response.id in reviewed else "model"
            elif proposal is not None and proposal.proposal is not None:
                labels = Labels.from_proposal(proposal.proposal)
                source = "model"
            else:
                labels, source = None, "uncoded"
            yield CodedResponse(
                response=response,
                labels=labels,
                source=source,
                proposal=proposal,
                decision=decision,
                notes=notes.get(response.id, []),
            )


def person_key(response: Response) -> str:
    """The respondent id, else a key of the response's own (counted as one person)."""
    return response.respondent or f"response:{response.id}"
