"""The pair model: (response, code) features and a logistic model that scores codes it never
saw an example of (new codes, new ArgKP motions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from coder.embedded.model_tools import best_f1_threshold, from_learned_parts, learned_parts
from coder.errors import BackendError

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
    if not len(values):
        return np.zeros(0), np.zeros(0), np.zeros(0)
    inverse = _dense_labels(keys)
    # Descending within each key, ties in input order: the order np.lexsort((-values,
    # inverse)) gives, from two stable sorts (2x faster on NHS's 120k pairs; this ran five
    # times per batch and was a third of the pair features' time).
    order = np.argsort(-values, kind="stable")
    order = order[np.argsort(inverse[order], kind="stable")]
    sorted_keys = inverse[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.bincount(inverse)
    maximum = values[order[starts]]  # each key's first element in descending order
    mean = np.bincount(inverse, weights=values) / sizes
    rank = np.empty(len(values))
    rank[order] = np.arange(len(values)) - np.repeat(starts, sizes)
    return maximum[inverse], mean[inverse], rank


def _dense_labels(keys: np.ndarray) -> np.ndarray:
    """``keys`` relabelled 0..k-1 in sorted order (np.unique's inverse, without its sort)."""
    if keys.dtype.kind in "iu" and len(keys) and keys.min() >= 0:
        present = np.zeros(int(keys.max()) + 1, dtype=bool)
        present[keys] = True
        return (np.cumsum(present) - 1)[keys]
    return np.unique(keys, return_inverse=True)[1].reshape(-1)


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
    kept = _kept_pairs(rows, cols, len(candidates), len(codes.ids), keep)
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
    code_category = np.array([category_index[category] for category in categories], np.int64)
    group = rows * len(category_index) + code_category[cols]
    group_max, group_mean, group_rank = _group_stats(best, group)
    _, label_mean, _ = _group_stats(cos_label, group)
    centred = _centred_features(
        vectors64, candidates, codes, (by_definition, by_label), rows, cols
    )
    rows, cols = rows[kept], cols[kept]
    example_max, example_mean = _example_similarity(response_vectors, rows, cols, codes)
    overlap, code_words = _word_overlap(response_words, rows, cols, codes)
    has_examples = np.array([float(len(vectors) > 0) for vectors in codes.examples])
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


def _kept_pairs(
    rows: np.ndarray,
    cols: np.ndarray,
    n_responses: int,
    n_codes: int,
    keep: Sequence[Sequence[int]] | None,
) -> np.ndarray:
    """Positions of the (row, col) pairs that ``keep`` asks for (all of them without it)."""
    if keep is None:
        return np.arange(len(rows))
    # Ranks and centres need every candidate; everything else only the kept pairs.
    wanted = np.zeros((n_responses, n_codes), dtype=bool)
    for row, chosen in enumerate(keep):
        wanted[row, np.asarray(chosen, dtype=np.int64)] = True
    return np.flatnonzero(wanted[rows, cols])


def _centred_features(
    vectors64: np.ndarray,
    candidates: Sequence[Sequence[int]],
    codes: CodeVectors,
    products: tuple[np.ndarray, np.ndarray],
    rows: np.ndarray,
    cols: np.ndarray,
) -> list[np.ndarray]:
    """Per pair, cosines after subtracting the response's centre, and their group stats.

    ``products`` are the responses' dot products with the codes' definitions and labels.
    """
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
    for code_vectors, by_code in zip((codes.definition, codes.label), products, strict=True):
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
    return centred


def _word_overlap(
    response_words: Sequence[set[str]], rows: np.ndarray, cols: np.ndarray, codes: CodeVectors
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, the content words response and code share; per code, its word count."""
    overlap = np.array(
        [
            len(response_words[r] & codes.words[c])
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        ],
        dtype=np.float64,
    )
    return overlap, np.array([len(words) for words in codes.words], dtype=np.float64)


def _example_similarity(
    response_vectors: np.ndarray, rows: np.ndarray, cols: np.ndarray, codes: CodeVectors
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, the best and the top-three mean cosine with the code's examples (0 if none)."""
    example_max = np.zeros(len(rows))
    example_mean = np.zeros(len(rows))
    for position, vectors in enumerate(codes.examples):
        selected = np.flatnonzero(cols == position)
        if len(vectors) and len(selected):
            similarity = response_vectors[rows[selected]] @ vectors.T
            example_max[selected] = similarity.max(axis=1)
            example_mean[selected] = np.sort(similarity, axis=1)[:, -3:].mean(axis=1)
    return example_max, example_mean


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
