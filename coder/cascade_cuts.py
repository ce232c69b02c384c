"""The cascade's cuts: how well held-out proposals agree with reviewers, and the
confidence cuts chosen on that (one overall cut, or one per field).

A single cut on the embedded proposal's overall confidence (the least confident of its
fields) lets the weakest field decide for all: on NHS, stance confidence is low on most
answers whose themes the model codes well, so one cut high enough for stance keeps back
answers whose themes and relevance would have been settled at the LLM's level.

Here every field has its own confidence (:func:`field_confidences`: themes from the
model's per-code probabilities, stance and relevance from the proposal) and its own cut.
:func:`choose_field_cuts` tries a grid of cuts per field on the held-out reviewed answers
and keeps the combination that settles the most answers while the settled answers still
meet every field's target, exactly as the single cut must. An answer is settled only when
*every* field clears its cut: a field the model is unsure of sends the whole answer to
the LLM (a call is a call: asking for one field costs the same call).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from schemas import Codebook, Labels, Proposal, Response

#: The fields the cascade checks, in the order of the targets.
FIELDS = ("themes", "stance", "relevance")
#: The fewest held-out answers a cut may rest on (a cut above 3 lucky answers is noise).
MIN_SETTLED = 20
#: The confidence given, in calibration, to held-out answers another rule settles (their
#: reviewed twins, coder/twins.py): above every real confidence (all lie in [0, 1]), so
#: they count in every cut's levels. A cut this high settles nothing of the model's.
FORCED = 2.0


def item_agreement(
    proposal: Proposal, labels: Labels, question: str | None, codebook: Codebook
) -> np.ndarray:
    """Per answer: [theme tp, fp, fn, stance right, stance scored, relevance right].

    Themes are scored as the eval suite scores them: on answers the reviewer kept relevant,
    codes that apply to the question, parents added by the codebook's rule; a "not
    relevant" proposal predicts no theme. Stance only where the reviewer gave one.
    """
    stats = np.zeros(6)
    gold_relevant = labels.relevant is not False
    stats[5] = float(proposal.relevant == gold_relevant)
    if not gold_relevant:
        return stats
    applies = {theme.id for theme in codebook.themes_for(question)}
    gold = set(codebook.with_parents(list(labels.themes))) & applies
    guess = (
        set(codebook.with_parents([t.code for t in proposal.themes])) & applies
        if proposal.relevant
        else set()
    )
    stats[0], stats[1], stats[2] = len(gold & guess), len(guess - gold), len(gold - guess)
    if labels.stance is not None and codebook.stance_ids:
        stats[3] = float(proposal.relevant and proposal.stance == labels.stance)
        stats[4] = 1.0
    return stats


def field_levels(stats: np.ndarray) -> dict[str, float | None]:
    """Themes micro-F1, stance and relevance accuracy from summed :func:`item_agreement` rows."""
    tp, fp, fn, stance_right, stance_n, relevance_right = stats
    denominator = 2 * tp + fp + fn
    return {
        "themes": float(2 * tp / denominator) if denominator else None,
        "stance": float(stance_right / stance_n) if stance_n else None,
        "relevance": None,  # filled by the caller, who knows the answer count
        "_relevance_right": float(relevance_right),
    }


def answer_levels(stats: np.ndarray, count: int) -> dict[str, float | None]:
    """Per-field levels of ``count`` answers' summed :func:`item_agreement` rows."""
    levels = field_levels(stats)
    right = levels.pop("_relevance_right")
    levels["relevance"] = (right or 0.0) / count if count else None
    return levels


def choose_cut(
    confidences: Sequence[float],
    stats: np.ndarray,
    targets: dict[str, float],
    min_settled: int = MIN_SETTLED,
) -> tuple[float | None, dict[str, Any]]:
    """The lowest confidence whose answers at or above it meet every target, and their levels.

    ``stats`` holds one :func:`item_agreement` row per answer. Answers with equal
    confidence stand or fall together. None when no cut over at least ``min_settled``
    answers meets the targets.
    """
    order = np.argsort(-np.asarray(confidences, dtype=float), kind="stable")
    sorted_conf = np.asarray(confidences, dtype=float)[order]
    cumulative = np.cumsum(stats[order], axis=0)
    best: tuple[float | None, dict[str, Any]] = (None, {})
    for k in range(len(order)):
        if k + 1 < len(order) and sorted_conf[k + 1] == sorted_conf[k]:
            continue  # a cut cannot split answers of equal confidence
        if k + 1 < min_settled:
            continue
        levels = answer_levels(cumulative[k], k + 1)
        if all(levels[name] is None or levels[name] >= targets.get(name, 0.0) for name in FIELDS):  # type: ignore[operator]
            best = (float(sorted_conf[k]), {"share": (k + 1) / len(order), **levels})
    return best


# --- per-field cuts -----------------------------------------------------------------------
#: The fields with a confidence of their own, in the columns of :func:`field_confidences`.
CONFIDENCE_FIELDS = ("themes", "stance", "relevance")
#: Cut candidates per field: quantiles of the held-out confidences (and "no cut"). More
#: candidates fit the reviewed answers more closely, and promise less on new ones.
GRID = 16


def themes_confidence(scores: dict[str, float]) -> float:
    """How sure the model is of its theme set: its least decided code, max(p, 1 - p)."""
    if not scores:
        return 1.0
    return float(min(max(p, 1.0 - p) for p in scores.values()))


def field_confidences(
    local: Any,
    responses: Sequence[Response],
    proposals: Sequence[Proposal | None],
    codebook: Codebook,
) -> np.ndarray:
    """One row per answer: [themes, stance, relevance] confidence of its proposal.

    A field that does not apply (no stance scale, or the answer proposed not relevant, so
    it has neither themes nor stance) is fully confident; a missing proposal has none.
    Themes come from ``local.code_scores`` (the model's probability of every code that
    applies), which the texts' cached vectors make cheap after ``propose``.
    """
    scores = local.code_scores(list(responses), codebook) if responses else []
    rows = np.zeros((len(responses), len(CONFIDENCE_FIELDS)))
    for row, (proposal, codes) in enumerate(zip(proposals, scores, strict=True)):
        if proposal is None:
            continue
        relevant = proposal.relevant is not False
        rows[row, 0] = themes_confidence(codes) if relevant else 1.0
        stance = proposal.stance_confidence
        rows[row, 1] = stance if relevant and stance is not None else 1.0
        relevance = proposal.relevance_confidence
        rows[row, 2] = relevance if relevance is not None else proposal.confidence
    return rows


def _candidates(values: np.ndarray) -> np.ndarray:
    """Cut candidates for one field: 0 (no cut) and quantiles of its confidences."""
    unique = np.unique(values)
    if len(unique) <= GRID:
        return np.concatenate([[0.0], unique])
    return np.unique(np.concatenate([[0.0], np.quantile(values, np.linspace(0, 0.98, GRID))]))


def _levels_many(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per candidate row: [themes micro-F1, stance accuracy, relevance accuracy] (nan: none)."""
    tp, fp, fn, stance_right, stance_n, relevance_right = sums.T
    with np.errstate(divide="ignore", invalid="ignore"):
        themes = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        stance = np.where(stance_n > 0, stance_right / stance_n, np.nan)
        relevance = np.where(counts > 0, relevance_right / counts, np.nan)
    return np.stack([themes, stance, relevance], axis=1)


def choose_field_cuts(
    confidences: np.ndarray,
    stats: np.ndarray,
    targets: dict[str, float],
    min_settled: int,
) -> tuple[dict[str, float] | None, dict[str, Any]]:
    """Per-field cuts settling the most answers whose levels meet every target.

    ``confidences`` is :func:`field_confidences`' matrix, ``stats`` one
    ``coder.cascade.item_agreement`` row per answer. Returns (cuts by field, the settled
    answers' share and levels), or (None, {}) when no combination over at least
    ``min_settled`` answers meets the targets.
    """
    count = len(confidences)
    if count == 0:
        return None, {}
    wanted = np.array([targets.get(name, 0.0) for name in CONFIDENCE_FIELDS])
    grids = [_candidates(confidences[:, col]) for col in range(len(CONFIDENCE_FIELDS))]
    above = [confidences[:, col][None, :] >= grid[:, None] for col, grid in enumerate(grids)]
    best: tuple[tuple[int, float], tuple[int, int, int]] | None = None
    for a in range(len(grids[0])):
        for b in range(len(grids[1])):
            masks = above[0][a] & above[1][b] & above[2]  # one row per relevance cut
            settled = masks.sum(axis=1)
            levels = _levels_many(masks.astype(float) @ stats, settled)
            meets = np.all(np.isnan(levels) | (levels >= wanted - 1e-12), axis=1)
            meets &= settled >= min_settled
            for c in np.flatnonzero(meets):
                # Most answers settled; on a tie, the lowest cuts (they promise the same).
                key = (int(settled[c]), -float(grids[0][a] + grids[1][b] + grids[2][c]))
                if best is None or key > best[0]:
                    best = (key, (a, b, int(c)))
    if best is None:
        return None, {}
    chosen = best[1]
    cuts = {name: float(grids[col][chosen[col]]) for col, name in enumerate(CONFIDENCE_FIELDS)}
    mask = above[0][chosen[0]] & above[1][chosen[1]] & above[2][chosen[2]]
    levels = _levels_many((mask.astype(float) @ stats)[None, :], np.array([mask.sum()]))[0]
    expected: dict[str, Any] = {"share": float(mask.sum()) / count}
    for name, value in zip(CONFIDENCE_FIELDS, levels, strict=True):
        expected[name] = None if np.isnan(value) else float(value)
    return cuts, expected


def clears(row: np.ndarray, cuts: dict[str, float]) -> bool:
    """True when every field's confidence is at or above its cut."""
    return all(row[col] >= cuts[name] for col, name in enumerate(CONFIDENCE_FIELDS))
