"""The cascade's joint rule: one cut on a fitted "whole proposal right" score.

The per-field rules (``coder/cascade_cuts.py``) settle an answer only when each field's
confidence clears its own cut, so every field's weakest answers decide alone. Whether an
embedded proposal is right as a whole depends on the fields together and on the answer
itself: a one-word answer with a confident theme is usually right even when the stance
confidence is middling; a long answer with four codes rarely is, whatever the fields say.

:func:`fit_joint` fits a logistic regression on the reviewed answers' *held-out*
proposals: the target is "the whole proposal agreed with the reviewer" (themes exact,
stance right where the reviewer gave one, relevance right), the features those of
:func:`joint_features`. :func:`choose_joint_cut` chooses the cut on the score the way
the other rules choose theirs (the lowest score whose answers at or above it meet every
field's target), but on scores *cross-fitted* over the held-out answers (each answer
scored by a fit that did not see it), so the promised share is not the fit's own
optimism. The model applied to new answers is then refitted on all of them.

The fitted model is kept as plain numbers (:class:`JointScore`: standardisation,
coefficients, intercept), recorded in the calibration and on every proposal it settles;
nothing is pickled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from coder.cascade_cuts import FORCED, MIN_SETTLED, choose_cut

#: The features' names, in the columns of :func:`joint_features`.
FEATURES = (
    "themes_confidence",
    "stance_confidence",
    "relevance_confidence",
    "log_themes_confidence",
    "log_stance_confidence",
    "log_relevance_confidence",
    "overall_confidence",
    "log_words",
    "codes_proposed",
    "proposed_relevant",
)
#: Inner splits that cross-fit the score the cut is chosen on.
FOLDS = 5
#: The logistic regression's inverse regularisation (the study's choice; 0.1 settled less).
C = 1.0
#: Fewest held-out answers of each kind (wholly right, not) a fit needs to mean anything.
MIN_CLASS = 10


def joint_features(
    field_confidence: np.ndarray,
    confidence: np.ndarray,
    words: np.ndarray,
    codes: np.ndarray,
    relevant: np.ndarray,
) -> np.ndarray:
    """One row per answer (columns :data:`FEATURES`): field confidences and their logs
    (the logs stretch the low end, where right and wrong separate), the overall confidence,
    log word count, codes proposed and whether it was proposed relevant."""
    by_field = np.asarray(field_confidence, dtype=float).reshape(-1, 3)
    return np.column_stack(
        [
            by_field,
            np.log(np.clip(by_field, 1e-6, 1.0)),
            np.asarray(confidence, dtype=float),
            np.log1p(np.asarray(words, dtype=float)),
            np.asarray(codes, dtype=float),
            np.asarray(relevant, dtype=float),
        ]
    )


def whole_right(stats: np.ndarray) -> np.ndarray:
    """Per ``item_agreement`` row: True when the whole proposal agreed with the reviewer."""
    _tp, fp, fn, stance_right, stance_n, relevance_right = np.asarray(stats, dtype=float).T
    return (fp == 0) & (fn == 0) & ((stance_n == 0) | (stance_right == 1)) & (relevance_right == 1)


@dataclass(frozen=True)
class JointScore:
    """A fitted "whole proposal right" score, as plain numbers."""

    means: tuple[float, ...]
    scales: tuple[float, ...]
    coefficients: tuple[float, ...]
    intercept: float

    def score(self, features: np.ndarray) -> np.ndarray:
        """The probability, per row of :func:`joint_features`, that the proposal is right."""
        standard = (np.asarray(features, dtype=float) - self.means) / np.asarray(self.scales)
        logits = standard @ np.asarray(self.coefficients) + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the numbers, with the features' names."""
        return {"features": list(FEATURES), **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JointScore:
        """The score recorded by :meth:`as_dict` (e.g. in a proposal's ``params``)."""
        return cls(
            means=tuple(data["means"]),
            scales=tuple(data["scales"]),
            coefficients=tuple(data["coefficients"]),
            intercept=float(data["intercept"]),
        )


def fit_joint(features: np.ndarray, right: np.ndarray, c: float = C) -> JointScore | None:
    """The logistic "whole proposal right" score; None when either kind of answer is too
    rare to learn from."""
    from sklearn.linear_model import LogisticRegression

    right = np.asarray(right, dtype=bool)
    if right.sum() < MIN_CLASS or (~right).sum() < MIN_CLASS:
        return None
    means = features.mean(axis=0)
    spread = features.std(axis=0)
    # A constant feature (e.g. no stance scale) carries nothing: leave it unscaled.
    scales = np.where(spread > 0, spread, 1.0)
    model = LogisticRegression(C=c, max_iter=2000).fit((features - means) / scales, right)
    return JointScore(
        means=tuple(float(v) for v in means),
        scales=tuple(float(v) for v in scales),
        coefficients=tuple(float(v) for v in model.coef_[0]),
        intercept=float(model.intercept_[0]),
    )


def choose_joint_cut(
    features: np.ndarray,
    stats: np.ndarray,
    targets: dict[str, float],
    folds: int = FOLDS,
    min_settled: int = MIN_SETTLED,
    forced: np.ndarray | None = None,
) -> tuple[JointScore | None, float | None, dict[str, Any]]:
    """The joint score fitted on every held-out answer, and the cut chosen on cross-fitted
    scores: (score, cut, the settled answers' share and levels); (None, None, {}) when no
    fit or no cut meets the targets. ``forced`` marks answers another rule settles: not
    fitted on, and counted in every cut's levels (their ``stats`` that rule's)."""
    free = np.flatnonzero(~forced) if forced is not None else np.arange(len(features))
    count = len(free)
    right = whole_right(stats)
    if count < 2 * folds:
        return None, None, {}
    cross_fitted = np.full(len(features), FORCED)
    order = np.random.default_rng(0).permutation(count)
    for fold in range(folds):
        test = free[order[fold::folds]]
        train = free[np.setdiff1d(order, order[fold::folds])]
        fitted = fit_joint(features[train], right[train])
        if fitted is None:
            return None, None, {}
        cross_fitted[test] = fitted.score(features[test])
    cut, expected = choose_cut(cross_fitted.tolist(), stats, targets, min_settled)
    if cut is None or cut >= FORCED:
        return None, None, {}
    return fit_joint(features[free], right[free]), cut, expected
