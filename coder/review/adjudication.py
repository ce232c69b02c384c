"""Adjudication: the answers where reviewers' labels differ, and who to compare."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from coder.review.index import REVIEWED, QueueEntry, ReviewIndex, comparable_labels
from schemas import Labels


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
        distinct = {comparable_labels(state.labels_json) for state in states.values()}
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
