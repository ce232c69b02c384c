"""The KPA-2021 shared task's track-1 metric (key-point matching mAP) on ArgKP-style gold.

Follows the task's scorer ``track_1_kp_matching.py`` (IBM/KPA_2021_shared_task):

1. each argument is paired with its best-scoring key point; an argument with no
   prediction gets a dummy key point with score 0, which never matches;
2. within each (motion, stance) group, arguments are sorted by score and only the top
   ``int(0.5 * n)`` pairs are kept; then, as in the scorer, dummy pairs get score 0.99;
3. average precision (scikit-learn) of those pairs against the gold: a pair in ``labels``
   is a match; a pair in ``uncertain_labels`` (annotators split) is a non-match for
   **strict** and a match for **relaxed**; any other key point is a non-match. A group
   whose kept pairs contain no match scores AP = 0;
4. mAP = the mean over (motion, stance) groups (macro average).

Differences from the scorer, on purpose: ties are broken by input order (the scorer's
sort is unstable; the README says random), and a predicted key point must be one that
applies to the argument (its own motion) -- others are ignored, because in this format a
key point outside the motion has no gold label at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score

DUMMY = "__no_match__"


@dataclass(frozen=True)
class MatchItem:
    """One argument's gold: its group (motion), stance, matching and uncertain key points."""

    id: str
    group: str | None
    stance: str | None
    labels: frozenset[str]
    uncertain: frozenset[str]


def best_match(scores: dict[str, float], allowed: Iterable[str] | None = None) -> tuple[str, float]:
    """The highest-scoring allowed key point (first in order on ties), or the dummy."""
    allowed_set = set(allowed) if allowed is not None else None
    best: tuple[str, float] = (DUMMY, 0.0)
    for key, score in scores.items():
        if allowed_set is not None and key not in allowed_set:
            continue
        if best[0] == DUMMY or score > best[1]:
            best = (key, float(score))
    return best


def _average_precision(labels: np.ndarray, scores: np.ndarray, keys: Sequence[str]) -> float:
    order = np.argsort(-scores, kind="stable")
    top = int(len(order) * 0.5)
    kept = order[:top]
    y = labels[kept]
    s = scores[kept].copy()
    s[[keys[i] == DUMMY for i in kept]] = 0.99
    if len(y) == 0 or not y.any():
        return 0.0
    return float(average_precision_score(y, s))


def kpa_map(
    items: Sequence[MatchItem], predictions: dict[str, tuple[str, float]]
) -> dict[str, object]:
    """Strict and relaxed mAP; ``predictions`` maps item id -> (key point, score)."""
    groups: dict[tuple[str | None, str | None], list[MatchItem]] = {}
    for item in items:
        groups.setdefault((item.group, item.stance), []).append(item)
    strict_aps: list[float] = []
    relaxed_aps: list[float] = []
    per_group = []
    for (group, stance), members in groups.items():
        keys = [predictions.get(m.id, (DUMMY, 0.0))[0] for m in members]
        scores = np.array([predictions.get(m.id, (DUMMY, 0.0))[1] for m in members], dtype=float)
        strict = np.array([k in m.labels for k, m in zip(keys, members, strict=True)], dtype=int)
        relaxed = np.array(
            [k in m.labels or k in m.uncertain for k, m in zip(keys, members, strict=True)],
            dtype=int,
        )
        ap_s = _average_precision(strict, scores, keys)
        ap_r = _average_precision(relaxed, scores, keys)
        strict_aps.append(ap_s)
        relaxed_aps.append(ap_r)
        per_group.append(
            {
                "group": group,
                "stance": stance,
                "n": len(members),
                "ap_strict": ap_s,
                "ap_relaxed": ap_r,
            }
        )
    return {
        "map_strict": float(np.mean(strict_aps)) if strict_aps else float("nan"),
        "map_relaxed": float(np.mean(relaxed_aps)) if relaxed_aps else float("nan"),
        "n_groups": len(groups),
        "groups": per_group,
    }
