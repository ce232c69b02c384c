"""Answers worded as reviewed answers: their "reviewed twins".

Survey and workshop answers repeat ("Nothing", "Very good service", "Did not answer",
"Agree"). Another answer to the same question in the same words as answers reviewers coded
(case, spacing and punctuation aside) is usually coded as they coded it: on NHS dev, with
1,000 random answers reviewed, 30% of the others have a reviewed twin, and the twins' labels
agree with gold at themes micro-F1 0.946, stance 0.959 and relevance 0.995, above what the
embedded model or an LLM reaches on the same answers.

The cascade (:mod:`coder.cascade`) settles such answers from the reviewers' labels before
the embedded model is asked, under two guards:

- every reviewed twin must carry the same labels (themes, stance, relevance): reviewers who
  coded the same words differently (the context was in another column) leave the answer to
  the models;
- the rule must have earned its place on this project: checked leave-one-out on the
  reviewed answers themselves (each reviewed answer against its *other* reviewed twins), it
  must meet the cascade's targets on every field over at least :data:`MIN_CHECKED` answers.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coder.backends.base import ProposalResult
from coder.cascade_cuts import FIELDS, answer_levels, item_agreement
from schemas import Codebook, Labels, Proposal, Response, ThemeAssignment

#: Leave-one-out checks the rule needs before it settles anything.
MIN_CHECKED = 20
#: The model name twin proposals are stored under (backend ``local``: not an LLM).
MODEL = "reviewed-twins"
#: Twin ids kept in a proposal's trace (a common answer may have hundreds).
TRACED_IDS = 10

_NOT_WORD = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")


def twin_key(question: str | None, text: str) -> tuple[str, str]:
    """The words an answer is matched on: its question, and its text in lower case with
    punctuation dropped and spacing collapsed ("Very good!!" and "very  good" are twins).

    Looser than the review queue's ``same:`` filter (``coder.review.queue.normalised_answer``,
    edge punctuation only), which a reviewer types and reads: here a comma inside ("Agree,
    fully") does not change what was said, and the leave-one-out check guards the rule."""
    words = _SPACE.sub(" ", _NOT_WORD.sub(" ", text.casefold())).strip()
    return (question or "", words)


def _signature(labels: Labels) -> tuple[frozenset[str], str | None, bool]:
    return frozenset(labels.themes), labels.stance, labels.relevant is not False


@dataclass(frozen=True)
class Twin:
    """The reviewed answers an answer repeats, all coded alike."""

    response_ids: tuple[str, ...]
    labels: Labels


@dataclass
class TwinCheck:
    """The twin rule measured leave-one-out on the reviewed answers."""

    checked: int
    levels: dict[str, float | None]
    targets: dict[str, float]
    #: True when the rule may settle answers (enough checks, every target met)
    trusted: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (recorded with every cascade proposal's calibration)."""
        return dict(self.__dict__)


@dataclass
class TwinIndex:
    """The project's reviewed answers by :func:`twin_key`."""

    groups: dict[tuple[str, str], list[tuple[str, Labels]]] = field(default_factory=dict)

    @classmethod
    def from_reviewed(cls, pairs: Iterable[tuple[Response, Labels]]) -> TwinIndex:
        """Index reviewed answers (their labels in force)."""
        groups: dict[tuple[str, str], list[tuple[str, Labels]]] = defaultdict(list)
        for response, labels in pairs:
            groups[twin_key(response.question, response.text)].append((response.id, labels))
        return cls(dict(groups))

    def twin(self, response: Response, *, leave_out: str | None = None) -> Twin | None:
        """The reviewed twins of ``response`` when they all carry the same labels (None when
        it has none, or they disagree). ``leave_out``: a reviewed answer's own id."""
        group = [
            (rid, labels)
            for rid, labels in self.groups.get(twin_key(response.question, response.text), [])
            if rid != leave_out
        ]
        if not group or len({_signature(labels) for _, labels in group}) > 1:
            return None
        return Twin(tuple(rid for rid, _ in group), group[0][1])

    def held_out(
        self, pairs: Sequence[tuple[Response, Labels]], codebook: Codebook
    ) -> tuple[np.ndarray, np.ndarray]:
        """Leave-one-out over the reviewed ``pairs``: which have twins among the *other*
        reviewed answers (a mask), and each one's :func:`item_agreement` row for the twin
        proposal (zeros where it has none)."""
        mask = np.zeros(len(pairs), dtype=bool)
        stats = np.zeros((len(pairs), 6))
        for row, (response, labels) in enumerate(pairs):
            twin = self.twin(response, leave_out=response.id)
            if twin is None:
                continue
            mask[row] = True
            question = labels.question or response.question
            stats[row] = item_agreement(
                twin_proposal(response, twin, {}), labels, question, codebook
            )
        return mask, stats

    def check(
        self,
        pairs: Sequence[tuple[Response, Labels]],
        codebook: Codebook,
        targets: dict[str, float],
    ) -> TwinCheck:
        """Measure the rule leave-one-out on the reviewed ``pairs`` against ``targets``."""
        mask, stats = self.held_out(pairs, codebook)
        return judge(mask, stats, targets)


def judge(mask: np.ndarray, stats: np.ndarray, targets: dict[str, float]) -> TwinCheck:
    """The verdict on :meth:`TwinIndex.held_out`'s rows: trusted when at least
    :data:`MIN_CHECKED` reviewed answers were checked and every field meets its target."""
    checked = int(mask.sum())
    levels = answer_levels(stats[mask].sum(axis=0), checked)
    short = [
        f"{name} {levels[name]:.3f} < {targets[name]:.3f}"
        for name in FIELDS
        if levels.get(name) is not None and levels[name] < targets[name]  # type: ignore[operator]
    ]
    if checked < MIN_CHECKED:
        reason = (
            f"{checked} of the reviewed answers repeat another reviewed answer word for word; "
            f"at least {MIN_CHECKED} check the rule"
        )
    elif short:
        reason = "below target: " + ", ".join(short)
    else:
        reason = "targets met"
    trusted = checked >= MIN_CHECKED and not short
    return TwinCheck(checked, levels, dict(targets), trusted, reason)


def twin_proposal(response: Response, twin: Twin, levels: dict[str, float | None]) -> Proposal:
    """The reviewers' labels as a proposal for ``response``: each code's evidence is the
    answer itself (it is short, and it is the reviewed words), confidences the rule's
    leave-one-out levels (``levels``; 1.0 where unmeasured)."""
    labels = twin.labels
    relevant = labels.relevant is not False
    quote = response.text.strip() or None

    def level(name: str) -> float:
        value = levels.get(name)
        return 1.0 if value is None else float(value)

    count = len(twin.response_ids)
    return Proposal(
        response_id=response.id,
        question=response.question,
        stance=labels.stance if relevant else None,
        stance_confidence=level("stance") if relevant and labels.stance else None,
        relevant=relevant,
        relevance_reason=labels.relevance_reason,
        relevance_confidence=level("relevance"),
        themes=[
            ThemeAssignment(code=code, evidence=quote, confidence=level("themes"))
            for code in (labels.themes if relevant else [])
        ],
        rationale=(
            f"Worded as {count} reviewed answer{'s' if count != 1 else ''} to this question, "
            f"all coded alike (e.g. {twin.response_ids[0]})."
        ),
        confidence=min(level(name) for name in FIELDS),
    )


def twin_result(response: Response, twin: Twin, check: TwinCheck) -> ProposalResult:
    """The stored result for an answer settled by its twins, traced to them."""
    return ProposalResult(
        response_id=response.id,
        proposal=twin_proposal(response, twin, check.levels),
        model_version=MODEL,
        params={
            "twins": list(twin.response_ids[:TRACED_IDS]),
            "twin_count": len(twin.response_ids),
        },
    )


class TwinSource:
    """What :func:`coder.precode.proposal_row` records as the backend of a twin proposal."""

    backend: str = "local"
    model: str = MODEL
