"""Which labelled answers the stance cross-encoder's gate scores: whole questions when it can.

The gate (:mod:`coder.embedded.stance_pairs_gate`) compares the cross-encoder with the current
stance model on answers neither was trained on. A random 10% comes from questions both were
trained on, so it measures how well a model knows those questions; a workshop asks new
hypotheses, so what matters is whether it generalises to a question it has not seen. On ArgKP
a random holdout ranked the two stance models the wrong way round (pairs 0.851 vs current
0.885 held back; 0.744 vs 0.722 on unseen motions). So when the answers span
``MIN_QUESTIONS`` or more questions, a seeded choice of whole questions is kept unseen,
adding up to about the holdout share; with fewer questions (or when no choice of questions
comes near the share) the seeded random split stays.

Early stopping does not use the unseen questions: it holds back a seeded 10% of the other
answers (``FineTuneRun``). Stopping on two held-out ArgKP motions stopped at the first
evaluation (their loss rose while the model kept improving on other motions: 0.618 on the
dev motions against 0.744 trained to the end).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Fewer distinct questions than this: hold back a random share of answers instead.
MIN_QUESTIONS = 4
#: Below this many labelled answers nothing is held back (as in ``FineTuneRun``).
MIN_HOLDOUT_ANSWERS = 20
#: Whole questions are held back only when they come within this factor of the share
#: (e.g. 5%..20% for 10%); a held-out share far off would starve training or the gate.
SHARE_TOLERANCE = 2.0


@dataclass
class Holdout:
    """The rows the gate scores (sorted indices) and how they were chosen."""

    rows: np.ndarray
    #: "questions" (whole questions held back), "random" or "none" (too few answers)
    by: str
    #: the held-back questions (``by == "questions"``), in the order chosen
    questions: list[str | None] = field(default_factory=list)

    def record(self, count: int) -> dict[str, object]:
        """What was held back, as JSON for the training record and the gate's report."""
        return {
            "by": self.by,
            "questions": list(self.questions),
            "n_held_back": int(len(self.rows)),
            "share": round(len(self.rows) / count, 4) if count else 0.0,
        }


def random_rows(count: int, share: float, seed: int) -> np.ndarray:
    """The seeded random holdout (the same permutation ``FineTuneRun`` draws)."""
    order = np.random.default_rng(seed).permutation(count)
    held = int(round(share * count)) if count >= MIN_HOLDOUT_ANSWERS else 0
    return np.sort(order[:held])


def question_rows(
    questions: Sequence[str | None], share: float, seed: int
) -> tuple[np.ndarray, list[str | None]] | None:
    """Rows of a seeded choice of whole questions adding up to about ``share``; None when
    there are fewer than ``MIN_QUESTIONS`` questions or no choice comes within
    ``SHARE_TOLERANCE`` of the share."""
    sizes: dict[str | None, int] = {}
    for question in questions:
        sizes[question] = sizes.get(question, 0) + 1
    if len(sizes) < MIN_QUESTIONS or len(questions) < MIN_HOLDOUT_ANSWERS:
        return None
    target = share * len(questions)
    # Sorted first so the seeded order does not depend on the order answers arrived in.
    names = sorted(sizes, key=lambda name: (name is None, str(name)))
    chosen: list[str | None] = []
    total = 0
    for position in np.random.default_rng(seed).permutation(len(names)):
        name = names[position]
        # Take a question when it brings the total nearer the target; skipping one that
        # overshoots lets a smaller question later in the seeded order fill the gap.
        if abs(total + sizes[name] - target) < abs(total - target):
            chosen.append(name)
            total += sizes[name]
        if total >= target:
            break
    if not chosen or len(chosen) >= len(names) - 1:
        return None
    if not target / SHARE_TOLERANCE <= total <= target * SHARE_TOLERANCE:
        return None
    held = set(chosen)
    rows = np.array([i for i, question in enumerate(questions) if question in held], np.int64)
    return rows, chosen


def stance_holdout(questions: Sequence[str | None], share: float, seed: int) -> Holdout:
    """The pair run's holdout over answers asked ``questions`` (one entry per answer)."""
    count = len(questions)
    if count < MIN_HOLDOUT_ANSWERS or share <= 0:
        return Holdout(np.zeros(0, np.int64), "none")
    grouped = question_rows(questions, share, seed)
    if grouped is not None:
        return Holdout(grouped[0], "questions", grouped[1])
    return Holdout(random_rows(count, share, seed), "random")
