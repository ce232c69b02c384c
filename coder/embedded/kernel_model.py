"""The kernel ridge theme model: one linear system for all codes at once (see models.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import KFold

from coder.embedded.model_tools import (
    best_f1_threshold,
    from_learned_parts,
    learned_parts,
    leave_one_out,
    platt,
    sigmoid,
    slim,
    word_tfidf,
)

#: steady_thresholds: pseudo-positives pulling a code's threshold toward the shared one
THRESHOLD_SHRINKAGE = 5.0
#: steady_thresholds: bootstrap resamples of the held-out scores
THRESHOLD_RESAMPLES = 15
#: Thresholds are steadied only when at least this many answers chose them. Below, the
#: stacked model decides themes (gate.py) and the kernel's thresholds only shift its margin
#: features; there steadied ones cost micro-F1 (NHS learning curve at 200 answers, same
#: run: 0.595 against 0.614). Above GATE_MAX_EXAMPLES (1,000) the kernel decides itself.
STEADY_MIN_ROWS = 1000


def steady_thresholds(
    scores: np.ndarray, truth: np.ndarray, floor: float, seed: int = 0
) -> np.ndarray:
    """Per column, a best-F1 threshold that moves less with a few positives' luck.

    The best-F1 threshold of a code with 5 to 40 positives rests on a handful of held-out
    scores. Two steadier estimates are averaged: (a) the threshold as a share of the code's
    mean positive score, shrunk toward the share pooled over codes by THRESHOLD_SHRINKAGE
    pseudo-positives (codes' score scales differ, their shares less); (b) the mean best
    threshold over THRESHOLD_RESAMPLES bootstrap resamples of the rows (bagging). Chosen on
    the NHS training pool's leave-one-out kernel scores, thresholds set on 4/5 of them and
    scored on the rest (six seeds): macro-F1 +0.005 on average with the default encoder (5
    of 6 seeds up), +0.005 with the fine-tuned one (6 of 6), micro-F1 +0.001 to +0.002;
    (a) or (b) alone lost in more seeds. Never below ``floor``.
    """
    count = truth.shape[1]
    own = np.array(
        [best_f1_threshold(scores[:, j], truth[:, j], floor)[0] for j in range(count)]
    )
    positives = truth.sum(axis=0)
    scale = np.array(
        [
            max(float(scores[truth[:, j] > 0, j].mean()), 1e-3) if positives[j] else 1.0
            for j in range(count)
        ]
    )
    share = own / scale
    pooled = float(np.average(share, weights=positives)) if positives.sum() else 0.5
    shrunk = (positives * share + THRESHOLD_SHRINKAGE * pooled) / (
        positives + THRESHOLD_SHRINKAGE
    )
    relative = np.where(positives > 0, np.maximum(shrunk * scale, floor), own)
    rng = np.random.default_rng(seed)
    total, counted = np.zeros(count), np.zeros(count)
    for _ in range(THRESHOLD_RESAMPLES):
        rows = rng.integers(0, len(truth), len(truth))
        for j in np.flatnonzero(truth[rows].sum(axis=0) > 0):
            total[j] += best_f1_threshold(scores[rows, j], truth[rows, j], floor)[0]
            counted[j] += 1
    bagged = np.where(counted > 0, total / np.maximum(counted, 1), own)
    return np.maximum((relative + bagged) / 2, floor)


@dataclass
class KernelParams:
    """Kernel ridge settings (tuned on the NHS dev split by 5-fold cross-validation)."""

    embedding_weight: float = 1.0
    same_question_boost: float = 0.5
    ridge: float = 5.0
    threshold_floor: float = 0.1
    min_f1: float = 0.0
    #: 0 = closed-form leave-one-out scores for thresholds; k >= 2 = k-fold
    folds: int = 0
    codebook_examples: bool = True
    char_weight: float = 2.0
    #: thresholds steadied for codes with few positives (see steady_thresholds) when fitted
    #: on STEADY_MIN_ROWS answers or more; off: each code's own best-F1 held-out threshold.
    #: LocalClassifier.fit turns it on for a fine-tuned encoder only: there the training
    #: pool's cross-validation and the NHS holdout agreed (macro-F1 0.579 -> 0.590); with the
    #: shipped encoder they did not (NHS 5-fold CV macro 0.553 -> 0.551, holdout 0.562 -> 0.556)
    steady_thresholds: bool = False


@dataclass
class KernelThemeModel:
    """Multi-label kernel ridge over responses; see the module docstring."""

    labels: list[str]
    params: KernelParams = field(default_factory=KernelParams)
    vectorizer: TfidfVectorizer | None = None
    char_vectorizer: TfidfVectorizer | None = None
    train_tfidf: sp.csr_matrix | None = None
    train_embeddings: np.ndarray | None = None
    train_questions: np.ndarray | None = None
    dual: np.ndarray | None = None
    mean: np.ndarray | None = None
    thresholds: np.ndarray | None = None
    calibration: np.ndarray | None = None  # (labels, 2): slope, intercept
    cv_f1: np.ndarray | None = None
    #: out-of-fold scores of the tuning rows from the last fit (for the stack model; not stored)
    held_out: np.ndarray | None = None

    def to_parts(self) -> dict[str, Any]:
        """The learned state by field (see :mod:`coder.embedded.state_io`)."""
        parts = learned_parts(self)
        parts.pop("held_out", None)  # needed while fitting only
        return parts

    @classmethod
    def from_parts(cls, parts: dict[str, Any]) -> KernelThemeModel:
        """The model :meth:`to_parts` described."""
        return from_learned_parts(cls, parts)

    def _tfidf(self, texts: Sequence[str]) -> sp.csr_matrix:
        assert self.vectorizer is not None
        words = self.vectorizer.transform(texts)
        if self.char_vectorizer is None:
            return words.tocsr()
        chars = self.char_vectorizer.transform([t or "_" for t in texts])
        return sp.hstack([words, np.sqrt(self.params.char_weight) * chars]).tocsr()

    def _kernel(
        self,
        tfidf_a: sp.csr_matrix,
        emb_a: np.ndarray,
        q_a: np.ndarray,
        tfidf_b: sp.csr_matrix,
        emb_b: np.ndarray,
        q_b: np.ndarray,
    ) -> np.ndarray:
        kernel = self._embedding_kernel(emb_a, q_a, emb_b, q_b)
        kernel += (tfidf_a @ tfidf_b.T).toarray()
        return kernel

    def _embedding_kernel(
        self, emb_a: np.ndarray, q_a: np.ndarray, emb_b: np.ndarray, q_b: np.ndarray
    ) -> np.ndarray:
        """The kernel's embedding part: c + c^2 + c^3 of the cosine, boosted within a question."""
        cosine = emb_a @ emb_b.T
        kernel = cosine * (1.0 + cosine * (1.0 + cosine))  # c + c^2 + c^3, in place below
        kernel *= self.params.embedding_weight
        # Same question: boost by (1 + same_question_boost). Questions become small integers
        # first, so the mask is one vectorised comparison (block-wise fancy indexing
        # copied each block twice and cost as much as the kernel itself).
        boost = self.params.same_question_boost
        if boost:
            values = {value: code for code, value in enumerate(set(q_a.tolist()) | set(q_b.tolist()))}
            codes_a = np.array([values[value] for value in q_a.tolist()], dtype=np.int32)
            codes_b = np.array([values[value] for value in q_b.tolist()], dtype=np.int32)
            same = codes_a[:, None] == codes_b[None, :]
            np.multiply(kernel, 1.0 + boost, out=kernel, where=same)
        return kernel

    def _tfidf_dual(self) -> np.ndarray:
        """train_tfidf.T @ dual (features x labels), computed once per fitted model.

        The TF-IDF part of the kernel is linear, so (X @ T.T) @ dual = X @ (T.T @ dual):
        scoring a batch becomes a sparse-times-dense product instead of a (batch x train)
        sparse product made dense (a quarter of propose's time outside the encoder on NHS).
        Summed in float64; on NHS dev the scores are closer to a float64 reference than
        the float32 product's were (6e-6 against 9e-6), and every decision is unchanged.
        """
        cached: np.ndarray | None = getattr(self, "_tfidf_dual_cache", None)
        if cached is None:
            assert self.train_tfidf is not None and self.dual is not None
            cached = np.asarray(
                self.train_tfidf.T.astype(np.float64) @ self.dual.astype(np.float64)
            )
            # A plain attribute, not a field: to_parts() stores fields only.
            self._tfidf_dual_cache: np.ndarray | None = cached
        return cached

    @staticmethod
    def _solve(kernel: np.ndarray, targets: np.ndarray, ridge: float) -> np.ndarray:
        regularised = kernel + ridge * np.eye(len(kernel))
        return np.linalg.solve(regularised, targets)

    def fit(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray,
        questions: Sequence[str | None],
        targets: np.ndarray,
        tune_rows: np.ndarray | None = None,
    ) -> KernelThemeModel:
        """Fit on (n, labels) 0/1 ``targets``; choose thresholds on out-of-fold scores.

        ``tune_rows`` (boolean mask) limits threshold choice and calibration to real
        responses, when codebook examples were added to the training rows.
        """
        self.vectorizer = word_tfidf()
        try:
            self.vectorizer.fit(texts)
        except ValueError:  # empty vocabulary (tiny training sets)
            self.vectorizer = TfidfVectorizer(min_df=1)
            self.vectorizer.fit([t or "_" for t in texts])
        if self.params.char_weight > 0:
            self.char_vectorizer = TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(2, 5),
                sublinear_tf=True,
                min_df=2,
                max_features=100_000,
            )
            self.char_vectorizer.fit([t or "_" for t in texts])
        tfidf = self._tfidf(texts)
        emb = embeddings.astype(np.float64)
        q = np.array([question or "" for question in questions], dtype=object)
        kernel = self._kernel(tfidf, emb, q, tfidf, emb, q)
        y = targets.astype(np.float64)
        # Out-of-fold scores for thresholds and calibration.
        folds = min(self.params.folds, len(y))
        oof = np.zeros_like(y)
        self.mean = y.mean(axis=0)
        if folds == 0 and len(y) >= 2:
            dual, held_out = leave_one_out(kernel, y - self.mean, self.params.ridge)
            oof = held_out + self.mean
            self.dual = dual.astype(np.float32)
        else:
            if folds >= 2:
                for train, held in KFold(folds, shuffle=True, random_state=0).split(y):
                    mean = y[train].mean(axis=0)
                    dual = self._solve(
                        kernel[np.ix_(train, train)], y[train] - mean, self.params.ridge
                    )
                    oof[held] = kernel[np.ix_(held, train)] @ dual + mean
            self.dual = self._solve(kernel, y - self.mean, self.params.ridge).astype(np.float32)
        if tune_rows is not None:
            oof, y = oof[tune_rows], y[tune_rows]
        self.held_out = oof
        self._choose_thresholds(oof, y)
        slim(self.vectorizer)
        slim(self.char_vectorizer)
        self.train_tfidf = tfidf.astype(np.float32)
        self.train_embeddings = embeddings.astype(np.float32)
        self.train_questions = q
        self._tfidf_dual_cache = None  # refitted: scores() recomputes it
        return self

    def _choose_thresholds(self, oof: np.ndarray, truth: np.ndarray) -> None:
        """Per column, the decision threshold, its held-out F1 and the calibration."""
        floor = self.params.threshold_floor
        steady = (
            steady_thresholds(oof, truth, floor)
            if self.params.steady_thresholds and len(truth) >= STEADY_MIN_ROWS
            else None
        )
        thresholds, calibration, cv_f1 = [], [], []
        for column in range(truth.shape[1]):
            threshold, f1 = best_f1_threshold(oof[:, column], truth[:, column], floor)
            if steady is not None:
                threshold = float(steady[column])
            if f1 < self.params.min_f1:
                threshold = max(threshold, 0.5)
            thresholds.append(threshold)
            cv_f1.append(f1)
            calibration.append(platt(oof[:, column] - threshold, truth[:, column]))
        self.thresholds = np.array(thresholds)
        self.calibration = np.array(calibration)
        self.cv_f1 = np.array(cv_f1)

    def scores(
        self, texts: Sequence[str], embeddings: np.ndarray, questions: Sequence[str | None]
    ) -> np.ndarray:
        """Raw scores (n, labels); a code applies when its score exceeds its threshold."""
        assert self.vectorizer is not None and self.dual is not None and self.mean is not None
        assert self.train_tfidf is not None and self.train_embeddings is not None
        assert self.train_questions is not None
        tfidf = self._tfidf(texts).astype(np.float32)
        q = np.array([question or "" for question in questions], dtype=object)
        kernel = self._embedding_kernel(
            embeddings.astype(np.float32), q, self.train_embeddings, self.train_questions
        )
        by_words = np.asarray(tfidf @ self._tfidf_dual()).astype(np.float32)
        return kernel @ self.dual + by_words + self.mean

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from :meth:`scores` (0.5 sits near each threshold)."""
        assert self.thresholds is not None and self.calibration is not None
        margin = scores - self.thresholds
        return sigmoid(margin * self.calibration[:, 0] + self.calibration[:, 1])

    def nearest(
        self, embeddings: np.ndarray, questions: Sequence[str | None], count: int = 2
    ) -> np.ndarray:
        """Indices of the most similar training responses (for rationales)."""
        assert self.train_embeddings is not None
        result = np.zeros((len(embeddings), count), dtype=np.int64)
        for start in range(0, len(embeddings), 2048):  # bounded memory
            similarity = embeddings[start : start + 2048] @ self.train_embeddings.T
            if count == 1:
                result[start : start + 2048, 0] = similarity.argmax(axis=1)
            else:
                top = np.argpartition(-similarity, count - 1, axis=1)[:, :count]
                order = np.argsort(-np.take_along_axis(similarity, top, axis=1), axis=1)
                result[start : start + 2048] = np.take_along_axis(top, order, axis=1)
        return result
