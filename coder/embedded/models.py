"""The trained pieces of the embedded classifier (scikit-learn and numpy only).

- :class:`KernelThemeModel`: one kernel ridge regression for all codes at once, on a kernel
  that adds word TF-IDF similarity to a cubic polynomial of embedding cosine, boosted when
  two responses answer the same question. Solving for all codes in one linear system keeps a
  refit within seconds; per-code thresholds are chosen on out-of-fold scores and scores are
  calibrated to probabilities with a one-feature logistic fit (Platt scaling).
- :class:`PairModel`: a logistic model on (response, code) pair features (cosines with the
  code's definition, label and examples, their rank among the question's codes, elementwise
  products). It scores codes it never saw an example of: new codes, new ArgKP motions.
- :class:`LabelModel`: multinomial logistic regression for stance and relevance.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

from coder.embedded.features import content_words
from coder.errors import BackendError

#: Codes with fewer positives than this get no per-code model (the pair model scores them).
#: 3 over 5 in 5-fold CV on NHS dev: themes micro-F1 0.7258 vs 0.7226, macro-F1 0.544 vs 0.538.
MIN_POSITIVES = 3

_Model = TypeVar("_Model")


def learned_parts(model: Any) -> dict[str, Any]:
    """A model dataclass's fields by name: plain values, numpy/scipy arrays and fitted
    scikit-learn estimators, which :mod:`coder.embedded.state_io` stores without pickle."""
    return {item.name: getattr(model, item.name) for item in fields(model)}


def from_learned_parts(cls: type[_Model], parts: dict[str, Any]) -> _Model:
    """``cls`` rebuilt from :func:`learned_parts`; names it lacks (a newer coder's) are ignored."""
    names = {item.name for item in fields(cls)}  # type: ignore[arg-type]
    return cls(**{name: value for name, value in parts.items() if name in names})


def _word_tfidf() -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=50_000)


def _question_tfidf() -> TfidfVectorizer:
    # Words tagged with the question: "nothing" under "What was good?" differs from
    # "nothing" under "What could we do better?".
    return TfidfVectorizer(analyzer=str.split, sublinear_tf=True, min_df=2, lowercase=False)


def question_tagged(texts: Sequence[str], questions: Sequence[str | None]) -> list[str]:
    """Each word prefixed with a short tag of its question, for the question TF-IDF."""
    tagged = []
    for text, question in zip(texts, questions, strict=True):
        tag = f"q{zlib.crc32((question or '').encode('utf-8')) % 100_000}_"
        tagged.append(" ".join(tag + word for word in sorted(content_words(text))) or tag)
    return tagged


def slim(vectorizer: TfidfVectorizer | None) -> None:
    """Drop the fitted vectorizer's ``stop_words_`` (every pruned term: pickling bulk only)."""
    if vectorizer is not None and hasattr(vectorizer, "stop_words_"):
        del vectorizer.stop_words_


def best_f1_threshold(
    scores: np.ndarray, truth: np.ndarray, floor: float, beta: float = 1.0
) -> tuple[float, float]:
    """The score threshold with the best F-beta (F1 by default) on (scores, truth).

    Never below ``floor``. Returns (threshold, best F-beta).
    """
    positives = truth.sum()
    if positives == 0:
        return 1.0, 0.0
    order = np.argsort(-scores)
    hits = np.cumsum(truth[order])
    weight = beta * beta
    f1 = (1 + weight) * hits / (np.arange(1, len(scores) + 1) + weight * positives)
    best = int(f1.argmax())
    after = min(best + 1, len(scores) - 1)
    threshold = float((scores[order][best] + scores[order][after]) / 2)
    return max(threshold, floor), float(f1[best])


def leave_one_out(
    kernel: np.ndarray, targets: np.ndarray, ridge: float
) -> tuple[np.ndarray, np.ndarray]:
    """Kernel ridge dual coefficients, and every row's prediction when it is left out.

    Closed form, from one matrix inverse: with A = (K + ridge I)^-1 and dual = A y, the
    prediction for row i from a model fitted without it is y_i - dual_i / A_ii. This costs
    less than k-fold refits, and scores each row with a model of (n - 1) rows, closer to the
    final model than k-fold's (n - n/k): thresholds chosen on them fit the final model
    better (NHS dev 5-fold CV: micro-F1 0.736 / macro 0.553 against 0.734 / 0.544).
    """
    inverse = np.linalg.inv(kernel + ridge * np.eye(len(kernel)))
    dual = inverse @ targets
    return dual, targets - dual / np.diag(inverse)[:, None]


def platt(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Slope and intercept mapping a score to a probability (logistic fit, one feature)."""
    if truth.min() == truth.max():
        return 0.0, 4.0 if truth.max() else -4.0
    model = LogisticRegression(C=10.0)
    model.fit(scores.reshape(-1, 1), truth)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(values, -30, 30)))


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
        kernel += (tfidf_a @ tfidf_b.T).toarray()
        return kernel

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
        self.vectorizer = _word_tfidf()
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
        thresholds, calibration, cv_f1 = [], [], []
        if tune_rows is not None:
            oof, y_tune = oof[tune_rows], y[tune_rows]
        else:
            y_tune = y
        self.held_out = oof
        for column in range(y.shape[1]):
            threshold, f1 = best_f1_threshold(
                oof[:, column], y_tune[:, column], self.params.threshold_floor
            )
            if f1 < self.params.min_f1:
                threshold = max(threshold, 0.5)
            thresholds.append(threshold)
            cv_f1.append(f1)
            calibration.append(platt(oof[:, column] - threshold, y_tune[:, column]))
        self.thresholds = np.array(thresholds)
        self.calibration = np.array(calibration)
        self.cv_f1 = np.array(cv_f1)
        slim(self.vectorizer)
        slim(self.char_vectorizer)
        self.train_tfidf = tfidf.astype(np.float32)
        self.train_embeddings = embeddings.astype(np.float32)
        self.train_questions = q
        return self

    def scores(
        self, texts: Sequence[str], embeddings: np.ndarray, questions: Sequence[str | None]
    ) -> np.ndarray:
        """Raw scores (n, labels); a code applies when its score exceeds its threshold."""
        assert self.vectorizer is not None and self.dual is not None and self.mean is not None
        assert self.train_tfidf is not None and self.train_embeddings is not None
        assert self.train_questions is not None
        tfidf = self._tfidf(texts).astype(np.float32)
        q = np.array([question or "" for question in questions], dtype=object)
        kernel = self._kernel(
            tfidf,
            embeddings.astype(np.float32),
            q,
            self.train_tfidf,
            self.train_embeddings,
            self.train_questions,
        )
        return kernel @ self.dual + self.mean

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


# --- pair model: (response, code) -> match probability ---------------------------------------


@dataclass
class CodeVectors:
    """Embeddings of a set of codes: definition, label, and each code's examples."""

    ids: list[str]
    definition: np.ndarray  # (codes, dim)
    label: np.ndarray  # (codes, dim)
    examples: list[np.ndarray]  # per code, (examples, dim), possibly empty
    words: list[set[str]]
    #: per code, how many leading prototypes describe it (definition, label, include criteria)
    n_head: list[int] = field(default_factory=list)
    #: per code, its category ('' when none), e.g. the side of the motion for ArgKP
    categories: list[str] = field(default_factory=list)

    def index(self) -> dict[str, int]:
        return {code: position for position, code in enumerate(self.ids)}


def prototype_similarity(
    vectors: np.ndarray, per_code: Sequence[np.ndarray], n_head: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Zero-shot match of each vector to each code, and the best-matching prototype.

    0.3 x the best of definition/label/include criteria + 0.7 x the mean of the three most
    similar examples (the definition alone when a code has no examples). Averaging the top
    examples, not taking the single best, keeps codes with many examples from winning by
    chance (tuned on the NHS dev split: micro-F1 0.47 against 0.40 for the plain maximum).
    """
    similarity = np.zeros((len(vectors), len(per_code)), dtype=np.float32)
    best = np.zeros((len(vectors), len(per_code)), dtype=np.int32)
    if not len(per_code):
        return similarity, best
    # One matrix product against every code's prototypes, then each code's columns (a
    # product per code cost a third of the trained path's time outside the encoder).
    all_scores = vectors @ np.vstack(per_code).T
    start = 0
    for position, (prototypes, head) in enumerate(zip(per_code, n_head, strict=True)):
        scores = all_scores[:, start : start + len(prototypes)]
        start += len(prototypes)
        best[:, position] = scores.argmax(axis=1)
        head_score = scores[:, :head].max(axis=1)
        examples = scores.shape[1] - head
        if examples > 3:
            top = np.partition(scores[:, head:], examples - 3, axis=1)[:, -3:]
            similarity[:, position] = 0.3 * head_score + 0.7 * top.mean(axis=1)
        elif examples > 0:
            similarity[:, position] = 0.3 * head_score + 0.7 * scores[:, head:].mean(axis=1)
        else:
            similarity[:, position] = head_score
    return similarity, best


def _group_stats(values: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per element: max, mean and descending rank (0 = best) of ``values`` within its key."""
    unique, inverse = np.unique(keys, return_inverse=True)
    maximum = np.full(len(unique), -np.inf)
    np.maximum.at(maximum, inverse, values)
    mean = np.bincount(inverse, weights=values) / np.bincount(inverse)
    order = np.lexsort((-values, inverse))
    sorted_keys = inverse[order]
    first = np.searchsorted(sorted_keys, sorted_keys, side="left")
    rank = np.empty(len(values))
    rank[order] = np.arange(len(values)) - first
    return maximum[inverse], mean[inverse], rank


#: Scalar pair features before the elementwise product (see :func:`pair_features`).
PAIR_SCALARS = 26


def _centred_cosine(
    response_code: np.ndarray,
    response_centre: np.ndarray,
    centre_code: np.ndarray,
    centre_norm: np.ndarray,
    code_norm: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
) -> np.ndarray:
    """Cosine of (response - centre) with (code - centre), per pair, from dot products.

    Expanding the differences keeps the work to (responses x codes) matrix products instead
    of per-pair vector arithmetic (responses are unit vectors): 4x faster on NHS.
    """
    dot = (
        response_code[rows, cols]
        - response_centre[rows]
        - centre_code[rows, cols]
        + centre_norm[rows]
    )
    left = np.sqrt(np.clip(1.0 - 2.0 * response_centre[rows] + centre_norm[rows], 0.0, None))
    right = np.sqrt(
        np.clip(code_norm[cols] - 2.0 * centre_code[rows, cols] + centre_norm[rows], 0.0, None)
    )
    return dot / (left * right + 1e-9)
def pair_features(
    response_vectors: np.ndarray,
    response_words: Sequence[set[str]],
    candidates: Sequence[Sequence[int]],
    codes: CodeVectors,
    keep: Sequence[Sequence[int]] | None = None,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Features for every (response, candidate code) pair; returns (features, pairs).

    Besides absolute similarities, each pair is compared with the response's other
    candidates (all of them, and those of the same category, e.g. the same side of a
    motion): how a code ranks among its rivals transfers to codes never seen in training
    better than the raw cosine does. The same holds for cosines taken after subtracting
    the mean of the candidates' definitions: all of a motion's arguments and key points
    share its topic, and removing that shared direction leaves what tells them apart
    (ArgKP unseen dev motions: strict mAP 0.808 against 0.789; 4-fold grouped CV over
    the train motions: 0.733 against 0.717).

    ``candidates`` must list every code the response is scored against, because the
    rank and centred features depend on the whole list; ``keep`` (optional, per response)
    then limits which of those pairs are returned (negative sampling for training).
    """
    lengths = np.array([len(here) for here in candidates], dtype=np.int64)
    width = PAIR_SCALARS + response_vectors.shape[1]
    if lengths.sum() == 0:
        return np.zeros((0, width), dtype=np.float32), []
    rows = np.repeat(np.arange(len(candidates)), lengths)
    cols = np.concatenate([np.asarray(here, dtype=np.int64) for here in candidates if len(here)])
    if keep is None:
        kept = np.arange(len(rows))
    else:
        # Ranks and centres need every candidate; everything else only the kept pairs.
        wanted = np.zeros((len(candidates), len(codes.ids)), dtype=bool)
        for row, chosen in enumerate(keep):
            wanted[row, np.asarray(chosen, dtype=np.int64)] = True
        kept = np.flatnonzero(wanted[rows, cols])
    # (responses x codes) products, then indexed per pair: cheaper than per-pair arithmetic.
    vectors64 = response_vectors.astype(np.float64)
    by_definition = vectors64 @ codes.definition.T.astype(np.float64)
    by_label = vectors64 @ codes.label.T.astype(np.float64)
    cos_def = by_definition[rows, cols]
    cos_label = by_label[rows, cols]
    best = np.maximum(cos_def, cos_label)
    best_max, best_mean, rank = _group_stats(best, rows)
    categories = codes.categories or [""] * len(codes.ids)
    category_index = {category: i for i, category in enumerate(sorted(set(categories)))}
    group = rows * len(category_index) + np.array([category_index[categories[c]] for c in cols])
    group_max, group_mean, group_rank = _group_stats(best, group)
    _, label_mean, _ = _group_stats(cos_label, group)
    # Each response's centre: the mean definition vector of its candidates (responses to
    # one question share their candidates, so each distinct list is averaged once).
    centres = np.zeros(vectors64.shape)
    means: dict[tuple[int, ...], np.ndarray] = {}
    for row, here in enumerate(candidates):
        if len(here):
            key = tuple(here)
            if key not in means:
                means[key] = codes.definition[np.asarray(here, dtype=np.int64)].mean(axis=0)
            centres[row] = means[key]
    response_centre = np.einsum("ij,ij->i", vectors64, centres)
    centre_norm = np.einsum("ij,ij->i", centres, centres)
    centred = []
    for code_vectors, by_code in ((codes.definition, by_definition), (codes.label, by_label)):
        vectors = code_vectors.astype(np.float64)
        cosine = _centred_cosine(
            by_code,
            response_centre,
            centres @ vectors.T,
            centre_norm,
            np.einsum("ij,ij->i", vectors, vectors),
            rows,
            cols,
        )
        c_max, c_mean, c_rank = _group_stats(cosine, rows)
        centred += [cosine, cosine - c_max, cosine - c_mean, (c_rank == 0).astype(np.float64)]
    rows, cols = rows[kept], cols[kept]
    example_max = np.zeros(len(rows))
    example_mean = np.zeros(len(rows))
    has_examples = np.array([float(len(vectors) > 0) for vectors in codes.examples])
    for position, vectors in enumerate(codes.examples):
        selected = np.flatnonzero(cols == position)
        if len(vectors) and len(selected):
            similarity = response_vectors[rows[selected]] @ vectors.T
            example_max[selected] = similarity.max(axis=1)
            example_mean[selected] = np.sort(similarity, axis=1)[:, -3:].mean(axis=1)
    overlap = np.array(
        [
            len(response_words[r] & codes.words[c])
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        ],
        dtype=np.float64,
    )
    code_words = np.array([len(words) for words in codes.words], dtype=np.float64)
    best, cos_def, cos_label = best[kept], cos_def[kept], cos_label[kept]
    scalars = np.column_stack(
        [
            *(values[kept] for values in centred),
            cos_def,
            cos_label,
            example_max,
            example_mean,
            has_examples[cols],
            best - best_max[kept],
            best - best_mean[kept],
            (rank[kept] == 0).astype(np.float64),
            rank[kept],
            1.0 / lengths[rows],
            overlap / (1.0 + code_words[cols]),
            (overlap > 0).astype(np.float64),
            best - group_max[kept],
            best - group_mean[kept],
            (group_rank[kept] == 0).astype(np.float64),
            np.minimum(group_rank[kept], 10.0),
            cos_label - label_mean[kept],
            group_max[kept] - best_max[kept],
        ]
    )
    product = response_vectors[rows] * codes.definition[cols]
    matrix = np.hstack([scalars, product]).astype(np.float32)
    return matrix, list(zip(rows.tolist(), cols.tolist(), strict=True))


@dataclass
class PairModel:
    """Logistic regression on :func:`pair_features`; generalises to codes it never saw."""

    model: LogisticRegression | None = None
    threshold: float = 0.5
    n_pairs: int = 0
    #: share of training pairs that were positive
    base_rate: float = 0.0

    def to_parts(self) -> dict[str, Any]:
        """The learned state by field (see :mod:`coder.embedded.state_io`)."""
        return learned_parts(self)

    @classmethod
    def from_parts(cls, parts: dict[str, Any]) -> PairModel:
        """The model :meth:`to_parts` described."""
        return from_learned_parts(cls, parts)

    def fit(self, features: np.ndarray, truth: np.ndarray) -> PairModel:
        # C=0.1: stronger regularisation generalises better to unseen codes (ArgKP dev
        # motions: strict mAP 0.799 against 0.786 at C=1).
        self.model = LogisticRegression(C=0.1, max_iter=2000)
        self.model.fit(features, truth)
        self.n_pairs = len(truth)
        self.base_rate = float(np.mean(truth)) if len(truth) else 0.0
        probabilities = self.model.predict_proba(features)[:, 1]
        self.threshold, _ = best_f1_threshold(probabilities, truth, floor=0.2)
        return self

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        assert self.model is not None
        if len(features) == 0:
            return np.zeros(0)
        if self.model.n_features_in_ != features.shape[1]:
            raise BackendError(
                "the stored local model was trained by an older version of coder; "
                "run 'coder train' again"
            )
        return self.model.predict_proba(features)[:, 1]


# --- stance and relevance ---------------------------------------------------------------------


@dataclass
class LabelModel:
    """Multinomial logistic regression on TF-IDF, question-tagged words and embeddings."""

    classes: list[str] = field(default_factory=list)
    words: TfidfVectorizer | None = None
    tagged: TfidfVectorizer | None = None
    model: LogisticRegression | None = None
    constant: str | None = None
    extra_width: int = 0

    def to_parts(self) -> dict[str, Any]:
        """The learned state by field (see :mod:`coder.embedded.state_io`)."""
        return learned_parts(self)

    @classmethod
    def from_parts(cls, parts: dict[str, Any]) -> LabelModel:
        """The model :meth:`to_parts` described."""
        return from_learned_parts(cls, parts)

    def _features(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray,
        questions: Sequence[str | None],
        extra: np.ndarray | None,
    ) -> sp.csr_matrix:
        assert self.words is not None and self.tagged is not None
        blocks = [
            self.words.transform(texts),
            self.tagged.transform(question_tagged(texts, questions)),
            sp.csr_matrix(embeddings.astype(np.float64)),
        ]
        if self.extra_width:
            width = self.extra_width
            values = extra if extra is not None else np.zeros((len(texts), width))
            blocks.append(sp.csr_matrix(values))
        return sp.hstack(blocks).tocsr()

    def fit(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray,
        questions: Sequence[str | None],
        labels: Sequence[str],
        extra: np.ndarray | None = None,
        C: float = 2.0,
        balanced: bool = True,
    ) -> LabelModel:
        distinct = sorted(set(labels))
        self.classes = distinct
        if len(distinct) < 2:
            self.constant = distinct[0] if distinct else None
            return self
        self._fit_vocabulary(texts, questions, extra)
        features = self._features(texts, embeddings, questions, extra)
        self._fit_classifier(features, labels, C, balanced)
        slim(self.words)
        slim(self.tagged)
        return self

    def _fit_vocabulary(
        self, texts: Sequence[str], questions: Sequence[str | None], extra: np.ndarray | None
    ) -> None:
        self.words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        self.tagged = _question_tfidf()
        try:
            self.words.fit(texts)
        except ValueError:
            self.words = TfidfVectorizer(min_df=1)
            self.words.fit([text or "_" for text in texts])
        try:
            self.tagged.fit(question_tagged(texts, questions))
        except ValueError:
            self.tagged = TfidfVectorizer(analyzer=str.split, min_df=1, lowercase=False)
            self.tagged.fit(question_tagged(texts, questions))
        self.extra_width = 0 if extra is None else extra.shape[1]

    def _fit_classifier(
        self, features: sp.csr_matrix, labels: Sequence[str], C: float, balanced: bool
    ) -> None:
        self.model = LogisticRegression(
            C=C, max_iter=3000, class_weight="balanced" if balanced else None
        )
        self.model.fit(features, list(labels))
        self.classes = [str(label) for label in self.model.classes_]

    def probabilities(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray,
        questions: Sequence[str | None],
        extra: np.ndarray | None = None,
    ) -> np.ndarray:
        """(n, classes) probabilities, columns in ``self.classes`` order."""
        if self.model is None:
            return np.ones((len(texts), max(1, len(self.classes))))
        return self.model.predict_proba(self._features(texts, embeddings, questions, extra))


def choose_regularisation(
    texts: Sequence[str],
    embeddings: np.ndarray,
    questions: Sequence[str | None],
    labels: Sequence[str],
    extra: np.ndarray | None,
    choices: Sequence[float],
    folds: int = 3,
) -> float:
    """The C in ``choices`` whose (balanced) :class:`LabelModel` is most accurate held out.

    With answers to three or more questions the folds hold out whole questions, because a
    model is most often asked about questions (e.g. motions) it has not seen; otherwise the
    folds are random. Ties go to the first choice; tiny or one-class data get it too. Each
    fold's vocabulary and features are built once and shared by every choice.
    """
    distinct_questions = len(set(questions))
    if len(choices) == 1 or len(labels) < 30 or len(set(labels)) < 2:
        return choices[0]
    label_array = np.array(labels)
    if distinct_questions >= 3:
        groups = np.array([str(q) for q in questions])
        splits = list(GroupKFold(min(folds, distinct_questions)).split(texts, label_array, groups))
    else:
        if min(np.unique(label_array, return_counts=True)[1]) < folds:
            return choices[0]
        splitter = StratifiedKFold(folds, shuffle=True, random_state=0)
        splits = list(splitter.split(texts, label_array))

    def rows(index: np.ndarray) -> tuple[list[str], np.ndarray, list[str | None], Any]:
        return (
            [texts[i] for i in index],
            embeddings[index],
            [questions[i] for i in index],
            None if extra is None else extra[index],
        )

    correct = np.zeros(len(choices), dtype=np.int64)
    for train, held in splits:
        if len(set(label_array[train])) < 2:
            continue
        model = LabelModel()
        train_texts, _, train_questions, train_extra = rows(train)
        model._fit_vocabulary(train_texts, train_questions, train_extra)
        train_features = model._features(*rows(train))
        held_features = model._features(*rows(held))
        for position, strength in enumerate(choices):
            model._fit_classifier(train_features, label_array[train].tolist(), strength, True)
            assert model.model is not None
            predicted = np.array(model.classes)[
                model.model.predict_proba(held_features).argmax(axis=1)
            ]
            correct[position] += int((predicted == label_array[held]).sum())
    return float(choices[int(np.argmax(correct))])


# --- stacked themes: few-label learning -------------------------------------------------------

#: Reviewed answers that vote on each response's codes (similarity-weighted nearest neighbours).
STACK_NEIGHBOURS = 10
#: Rows of :func:`stack_features` built at once (bounds the responses x reviewed matrix).
STACK_CHUNK = 2048


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
        self.threshold, _ = best_f1_threshold(self.model.predict_proba(x)[:, 1], y, floor=0.05)
        return self

    def probabilities(self, features: np.ndarray, applicable: np.ndarray) -> np.ndarray:
        """(responses, codes) probabilities; 0 where a code does not apply."""
        assert self.model is not None
        result = np.zeros(applicable.shape)
        if applicable.any():
            result[applicable] = self.model.predict_proba(features[applicable])[:, 1]
        return result


@dataclass
class TrainedState:
    """Everything :meth:`LocalClassifier.fit` learned.

    Stored in the project as JSON plus numpy arrays (:mod:`coder.embedded.state_io`), never
    pickled: a new plain field (dicts, lists, text, numbers, sets) is carried automatically.
    """

    version: str
    encoder_name: str
    trained_at: str
    n_examples: int
    params: dict[str, Any]
    theme_model: KernelThemeModel | None = None
    pair_model: PairModel | None = None
    stance_model: LabelModel | None = None
    stance_uses_themes: bool = False
    stance_questions: set[str] = field(default_factory=set)
    relevance_model: LabelModel | None = None
    train_texts: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    #: per code with 1 to MIN_POSITIVES-1 positives: (positives, examples it could apply to)
    rare_codes: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: per field (themes, stance, relevance), what proposes it: see coder/embedded/gate.py
    fields: dict[str, str] = field(default_factory=dict)
    #: reviewed answers per stance value (values with too few keep zero-shot behaviour)
    stance_counts: dict[str, int] = field(default_factory=dict)
    #: per code, the reviewed answers that carry it: extra examples for zero-shot matching
    code_examples: dict[str, list[str]] = field(default_factory=dict)
    #: themes from few labels: zero-shot, nearest reviewed answers and kernel in one model
    stack_model: StackModel | None = None
