"""``coder assign``: split the unreviewed answers among reviewers, a seeded share twice.

A lead assigns the answers nobody has reviewed yet to a team. Each answer goes to one
reviewer, except a seeded share (``overlap``) that goes to two: *double coding*, whose
agreement `coder eval agreement` measures and whose disagreements go to the adjudication
screen. The pairs rotate through every pair of reviewers, so each pair shares about as
many answers, and the single answers go to whoever has fewest, so loads stay even.

An assignment is rows in the ``assignments`` table (migration m007), never updated: running
``coder assign`` again re-splits what is still unreviewed as a new run, and a response's
assignment is its latest run's rows. In the review app (coder/review.py) a reviewer's
"next" goes through their own assigned answers and answers assigned to nobody, passing
over answers assigned to others; a double-coded answer is unreviewed for its second
reviewer whatever the first decided, and each of its two reviewers sees neither the other's
notes nor, when the run was ``--blind``, the model's proposal.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from coder import review_queries
from coder.errors import CoderError
from coder.store import Store, now


class AssignError(CoderError):
    """The assignment asked for cannot be made; nothing was written."""


@dataclass
class Assignment:
    """What one ``coder assign`` run wrote."""

    run_id: str
    reviewers: list[str]
    answers: int  # answers assigned (each once, however many reviewers)
    double_coded: int
    blind: bool
    seed: int
    per_reviewer: Counter[str] = field(default_factory=Counter)
    per_pair: Counter[tuple[str, str]] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        """The run as text lines (what the command prints)."""
        out = [
            f"Assigned {self.answers:,} unreviewed answers to {len(self.reviewers)} reviewers "
            f"(run {self.run_id}, seed {self.seed}); {self.double_coded:,} double-coded"
            + (", blind to the model" if self.blind else "")
        ]
        for name in self.reviewers:
            out.append(f"  {name}: {self.per_reviewer[name]:,}")
        for (first, second), count in sorted(self.per_pair.items()):
            out.append(f"  {first} + {second}: {count:,} shared")
        return out


def parse_reviewers(text: str) -> list[str]:
    """``ann,bob,cy`` -> names, checked: non-empty, distinct."""
    names = [name.strip() for name in text.split(",")]
    if any(not name for name in names):
        raise AssignError(f"--reviewers {text!r}: an empty name; give names separated by commas, e.g. ann,bob,cy")
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise AssignError(f"--reviewers {text!r}: {', '.join(repeated)} given twice")
    return names


def assign(
    store: Store,
    reviewers: Sequence[str],
    overlap: float,
    *,
    seed: int = 0,
    blind: bool = False,
    question: str | None = None,
) -> Assignment:
    """Assign every unreviewed answer (of ``question``, if given) among ``reviewers``.

    A share ``overlap`` (0-1, drawn with ``seed``) goes to two reviewers. Returns what
    was written (one transaction).
    """
    reviewers = list(reviewers)
    if not reviewers:
        raise AssignError("--reviewers: name at least one reviewer")
    if not 0.0 <= overlap <= 1.0:
        raise AssignError(f"--overlap {overlap:g}: a share between 0 and 1, e.g. 0.2 for 20%")
    if overlap > 0 and len(reviewers) < 2:
        raise AssignError(f"--overlap {overlap:g}: double coding needs at least two reviewers")
    reviewed = store.reviewed_response_ids()
    candidates = [
        response_id
        for response_id, response_question, _tags in review_queries.response_keys(store)
        if response_id not in reviewed and (question is None or response_question == question)
    ]
    if not candidates:
        where = f" for question {question}" if question else ""
        raise AssignError(f"{store.path}: no unreviewed answers{where} to assign")
    rng = random.Random(seed)
    shuffled = list(candidates)
    rng.shuffle(shuffled)
    n_double = round(overlap * len(shuffled))
    result = Assignment(uuid.uuid4().hex[:12], reviewers, len(shuffled), n_double, blind, seed)
    pairs = list(itertools.combinations(reviewers, 2))
    rows: list[dict[str, object]] = []
    stamp = now()

    def add(response_id: str, name: str, double: bool) -> None:
        result.per_reviewer[name] += 1
        rows.append({
            "run_id": result.run_id,
            "response_id": response_id,
            "reviewer": name,
            "double_coded": int(double),
            "blind": int(blind),
            "seed": seed,
            "created_at": stamp,
        })

    for number, response_id in enumerate(shuffled[:n_double]):
        first, second = pairs[number % len(pairs)]
        result.per_pair[(first, second)] += 1
        add(response_id, first, True)
        add(response_id, second, True)
    for response_id in shuffled[n_double:]:
        # The least-loaded reviewer (first named on a tie): loads stay within one answer.
        name = min(reviewers, key=lambda reviewer: result.per_reviewer[reviewer])
        add(response_id, name, False)
    # Rows in import order, so the table reads naturally.
    position = {response_id: n for n, response_id in enumerate(candidates)}
    rows.sort(key=lambda row: (position[str(row["response_id"])], str(row["reviewer"])))
    store.add_assignments(rows)
    return result


@dataclass(frozen=True)
class AssignedAnswer:
    """One response's assignment in force."""

    reviewers: tuple[str, ...]
    blind: bool


def assignments_in_force(store: Store) -> dict[str, AssignedAnswer]:
    """Each assigned response's reviewers in its latest assignment run."""
    names: dict[str, list[str]] = {}
    blind: dict[str, bool] = {}
    for response_id, reviewer, is_blind in review_queries.assignments_in_force(store):
        names.setdefault(response_id, []).append(reviewer)
        blind[response_id] = bool(is_blind)
    return {rid: AssignedAnswer(tuple(sorted(reviewers)), blind[rid]) for rid, reviewers in names.items()}


def double_coded(store: Store) -> dict[str, tuple[str, ...]]:
    """Responses assigned to two reviewers (the overlap), with the two names."""
    return {rid: answer.reviewers for rid, answer in assignments_in_force(store).items()
            if len(answer.reviewers) > 1}
