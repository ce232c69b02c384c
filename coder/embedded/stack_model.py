"""The stacked themes model for few labels: zero-shot scores, nearest reviewed answers and
kernel margins combined in one logistic model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from coder.embedded.model_tools import best_f1_threshold, from_learned_parts, learned_parts
from coder.errors import BackendError

# --- stacked themes: few-label learning -------------------------------------------------------

#: Reviewed answers that vote on each response's codes (similarity-weighted nearest neighbours).
STACK_NEIGHBOURS = 10
#: Rows of :func:`stack_features` built at once (bounds the responses x reviewed matrix).
STACK_CHUNK = 2048
#: A code's own best threshold weighs as much as the shared one once reviewers gave the code
#: this many examples (a pseudo-count: with n examples its weight is n / (n + this)).
THRESHOLD_PRIOR_COUNT = 10.0
#: No threshold below this probability (as for the shared threshold).
THRESHOLD_FLOOR = 0.05


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def shrunk_thresholds(
    scores: np.ndarray,
    truth: np.ndarray,
    code_of_row: np.ndarray,
    n_codes: int,
    shared: float,
    prior_count: float = THRESHOLD_PRIOR_COUNT,
) -> np.ndarray:
    """Per code, its best-F1 threshold on its own rows shrunk toward the ``shared`` one.

    One threshold for all codes proposes rare codes too seldom (their probabilities run
    lower), while a code's own threshold from three examples is noise. The two are averaged
    in log-odds with weights n and ``prior_count`` (n: the code's positives), so a code
    moves toward its own threshold as reviewers give it examples; codes without any keep
    the shared threshold.
    """
    result = np.full(n_codes, shared)
    for code in range(n_codes):
        rows = code_of_row == code
        positives = float(truth[rows].sum())
        if positives == 0:
            continue
        own, _ = best_f1_threshold(scores[rows], truth[rows], floor=THRESHOLD_FLOOR)
        weight = positives / (positives + prior_count)
        blended = weight * _logit(own) + (1 - weight) * _logit(shared)
        result[code] = 1.0 / (1.0 + np.exp(-blended))
    return result


def stack_features(
    zero_shot: np.ndarray,
    applicable: np.ndarray,
    similarities: np.ndarray,
    targets: np.ndarray,
    kernel_margin: np.ndarray,
    covered: np.ndarray,
    question_positives: np.ndarray,
    question_counts: np.ndarray,
) -> np.ndarray:
    """Per (response, code), the evidence :class:`StackModel` weighs: (responses, codes, F).

    ``zero_shot`` is the zero-shot match (codes' text and the question prior), taken both
    as it is and relative to the response's other candidate codes; ``similarities`` are the
    response's cosines with each reviewed answer (``-inf`` for itself when scoring a
    reviewed answer), from which come a vote of its nearest reviewed answers and its
    closest reviewed answer carrying the code; ``kernel_margin`` is the kernel model's
    score minus its threshold (held out for reviewed answers; 0 where ``covered`` is
    False); ``question_positives``/``question_counts`` are how often reviewers gave each
    code to answers of the response's question. The code's count of positives enters by
    itself and multiplied with the others, so the weight of what reviewers taught grows with
    the number of examples while zero-shot carries codes they have not used (shrinkage).
    """
    count, n_codes = zero_shot.shape
    n_train = len(targets)
    positives = targets.sum(axis=0)
    masked = np.where(applicable, zero_shot, np.nan)
    has_any = applicable.any(axis=1, keepdims=True)
    filled = np.where(has_any, masked, 0.0)
    with np.errstate(all="ignore"):
        top = np.nan_to_num(np.nanmax(filled, axis=1, keepdims=True))
        mean = np.nan_to_num(np.nanmean(filled, axis=1, keepdims=True))
        spread = np.nan_to_num(np.nanstd(filled, axis=1, keepdims=True)) + 1e-6
    log_positives = np.broadcast_to(np.log1p(positives)[None, :], (count, n_codes))
    vote = np.zeros((count, n_codes))
    closest = np.zeros((count, n_codes))
    if n_train:
        k = min(STACK_NEIGHBOURS, n_train)
        near = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
        near_similarity = np.take_along_axis(similarities, near, axis=1)
        weights = np.exp(np.clip(near_similarity, -1.0, 1.0) * 10.0)
        weights /= weights.sum(axis=1, keepdims=True)
        vote = np.einsum("rk,rkc->rc", weights, targets[near])
        for code in np.flatnonzero(positives):
            carrying = np.flatnonzero(targets[:, code])
            closest[:, code] = similarities[:, carrying].max(axis=1)
        closest = np.where(np.isfinite(closest), closest, 0.0)
    rate = (positives + 0.5) / (n_train + 1.0)
    question_rate = np.log((question_positives + 2.0 * rate[None, :]) / (question_counts[:, None] + 2.0))
    is_top = (zero_shot >= top).astype(np.float64)
    return np.stack(
        [
            zero_shot,
            zero_shot - top,
            (zero_shot - mean) / spread,
            is_top,
            vote,
            closest,
            log_positives,
            log_positives * (zero_shot - top),
            kernel_margin,
            np.broadcast_to(covered[None, :], (count, n_codes)).astype(np.float64),
            kernel_margin * log_positives,
            np.broadcast_to(np.log(rate)[None, :], (count, n_codes)),
            question_rate,
        ],
        axis=2,
    )


@dataclass
class StackModel:
    """Themes from few labels: one logistic model over :func:`stack_features` for all codes.

    Shared by every code, it needs far fewer examples than a model per code, and it learns
    how far to trust each view: zero-shot where reviewers gave a code no or few examples,
    the kernel model and the nearest reviewed answers where they gave many. Every feature
    of a reviewed answer is computed without that answer (leave-one-out), so the weights
    are those the model needs on answers it has not seen.
    """

    codes: list[str] = field(default_factory=list)
    model: LogisticRegression | None = None
    threshold: float = 0.5
    #: per code, :func:`shrunk_thresholds` (None in models stored before them: ``threshold``)
    thresholds: np.ndarray | None = None
    #: reviewed answers the neighbour features look at, and their codes (0/1)
    train_embeddings: np.ndarray | None = None
    targets: np.ndarray | None = None
    #: per question seen in training: positives per code, and answers
    questions: list[str] = field(default_factory=list)
    question_positives: np.ndarray | None = None
    question_counts: np.ndarray | None = None

    def to_parts(self) -> dict[str, Any]:
        """The learned state by field (see :mod:`coder.embedded.state_io`)."""
        return learned_parts(self)

    @classmethod
    def from_parts(cls, parts: dict[str, Any]) -> StackModel:
        """The model :meth:`to_parts` described."""
        return from_learned_parts(cls, parts)

    def _question_rows(
        self, questions: Sequence[str | None], leave_out: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        assert self.question_positives is not None and self.question_counts is not None
        index = {question: row for row, question in enumerate(self.questions)}
        rows = np.array([index.get(str(question), -1) for question in questions])
        known = rows >= 0
        positives = np.where(known[:, None], self.question_positives[np.maximum(rows, 0)], 0.0)
        counts = np.where(known, self.question_counts[np.maximum(rows, 0)], 0.0)
        if leave_out is not None:  # a reviewed answer does not count itself
            positives = positives - leave_out
            counts = counts - 1.0
        return positives, counts

    def features(
        self,
        zero_shot: np.ndarray,
        applicable: np.ndarray,
        embeddings: np.ndarray,
        questions: Sequence[str | None],
        kernel_margin: np.ndarray,
        covered: np.ndarray,
        training: bool = False,
    ) -> np.ndarray:
        """:func:`stack_features` of some responses (``training``: the reviewed answers
        themselves, in training order, each left out of its own features)."""
        assert self.train_embeddings is not None and self.targets is not None
        blocks = []
        for start in range(0, len(zero_shot), STACK_CHUNK):
            stop = start + STACK_CHUNK
            similarities = embeddings[start:stop] @ self.train_embeddings.T
            leave_out = None
            if training:
                similarities[np.arange(len(similarities)), np.arange(start, start + len(similarities))] = -np.inf
                leave_out = self.targets[start:stop]
            positives, counts = self._question_rows(questions[start:stop], leave_out)
            blocks.append(
                stack_features(
                    zero_shot[start:stop],
                    applicable[start:stop],
                    similarities,
                    self.targets,
                    kernel_margin[start:stop],
                    covered,
                    positives,
                    counts,
                )
            )
        if not blocks:
            return np.zeros((0, len(self.codes), 13))
        return np.concatenate(blocks)

    def fit(
        self,
        zero_shot: np.ndarray,
        applicable: np.ndarray,
        embeddings: np.ndarray,
        questions: Sequence[str | None],
        targets: np.ndarray,
        kernel_margin: np.ndarray,
        covered: np.ndarray,
    ) -> StackModel:
        """Fit on reviewed answers (rows) and their 0/1 ``targets`` over ``self.codes``."""
        self.train_embeddings = embeddings.astype(np.float32)
        self.targets = targets.astype(np.float32)
        self.questions = sorted({str(question) for question in questions})
        row_of = np.array([self.questions.index(str(question)) for question in questions])
        self.question_positives = np.stack(
            [self.targets[row_of == row].sum(axis=0) for row in range(len(self.questions))]
        )
        self.question_counts = np.bincount(row_of, minlength=len(self.questions)).astype(float)
        features = self.features(
            zero_shot, applicable, embeddings, questions, kernel_margin, covered, training=True
        )
        x, y = features[applicable], targets[applicable]
        if y.min() == y.max():
            raise BackendError("no code was both given and not given: nothing to stack")
        self.model = LogisticRegression(C=1.0, max_iter=3000)
        self.model.fit(x, y)
        scores = self.model.predict_proba(x)[:, 1]
        self.threshold, _ = best_f1_threshold(scores, y, floor=THRESHOLD_FLOOR)
        self.thresholds = shrunk_thresholds(
            scores, y, np.nonzero(applicable)[1], len(self.codes), self.threshold
        )
        return self

    def code_thresholds(self) -> np.ndarray:
        """The threshold of each code (the shared one for a model stored without them)."""
        if self.thresholds is None or len(self.thresholds) != len(self.codes):
            return np.full(len(self.codes), self.threshold)
        return np.asarray(self.thresholds, dtype=np.float64)

    def probabilities(self, features: np.ndarray, applicable: np.ndarray) -> np.ndarray:
        """(responses, codes) probabilities; 0 where a code does not apply."""
        assert self.model is not None
        result = np.zeros(applicable.shape)
        if applicable.any():
            result[applicable] = self.model.predict_proba(features[applicable])[:, 1]
        return result
