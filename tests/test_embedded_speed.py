"""The trained model's fast paths (issue 14) give what the plain computations give: kernel
scores with the TF-IDF part folded into the dual coefficients, and the pair features'
per-group statistics from two stable sorts instead of np.lexsort and np.maximum.at."""

from __future__ import annotations

import numpy as np
import pytest

from coder.embedded.models import KernelParams, KernelThemeModel
from coder.embedded.pair_model import _group_stats


def _reference_group_stats(values: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, ...]:
    """The group statistics as first written (np.unique, np.maximum.at, np.lexsort)."""
    unique, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.reshape(-1)
    maximum = np.full(len(unique), -np.inf)
    np.maximum.at(maximum, inverse, values)
    mean = np.bincount(inverse, weights=values) / np.bincount(inverse)
    order = np.lexsort((-values, inverse))
    sorted_keys = inverse[order]
    first = np.searchsorted(sorted_keys, sorted_keys, side="left")
    rank = np.empty(len(values))
    rank[order] = np.arange(len(values)) - first
    return maximum[inverse], mean[inverse], rank


def test_group_stats_of_nothing_are_empty() -> None:
    assert [len(part) for part in _group_stats(np.zeros(0), np.zeros(0, np.int64))] == [0, 0, 0]


@pytest.mark.parametrize("seed", range(6))
def test_group_stats_are_bit_identical_to_the_lexsort_version(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 500))
    keys = rng.integers(0, int(rng.integers(1, 60)), count) * int(rng.integers(1, 4))
    if seed % 2:
        keys = np.sort(keys)  # pair rows come sorted; categories within them do not
    # Rounded values: many ties, whose ranks follow input order in both versions.
    values = np.round(rng.normal(size=count), seed % 3)
    for got, expected in zip(
        _group_stats(values, keys), _reference_group_stats(values, keys), strict=True
    ):
        assert np.array_equal(got, expected)
    # Keys that are not non-negative integers take the np.unique path.
    named = keys.astype(str)
    for got, expected in zip(
        _group_stats(values, named), _reference_group_stats(values, named), strict=True
    ):
        assert np.array_equal(got, expected)


def _fitted(texts: list[str], seed: int) -> tuple[KernelThemeModel, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(len(texts), 16)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    questions = [f"q{i % 3}" for i in range(len(texts))]
    targets = np.column_stack(
        [[float("parking" in t) for t in texts], [float("staff" in t) for t in texts]]
    )
    model = KernelThemeModel(labels=["parking", "staff"], params=KernelParams()).fit(
        texts, embeddings, questions, targets
    )
    return model, embeddings, questions


def test_kernel_scores_equal_the_full_kernel_product() -> None:
    texts = [
        f"answer {i} about {'parking spaces' if i % 4 == 0 else 'friendly staff'} and waiting"
        for i in range(50)
    ]
    model, embeddings, questions = _fitted(texts, 0)
    new_texts = ["the parking was awful", "staff were kind", "waiting", ""]
    rng = np.random.default_rng(5)
    new_embeddings = rng.normal(size=(4, 16)).astype(np.float32)
    new_embeddings /= np.linalg.norm(new_embeddings, axis=1, keepdims=True)
    new_questions: list[str | None] = ["q0", "q1", None, "q2"]
    assert model.train_tfidf is not None and model.dual is not None
    q = np.array([question or "" for question in new_questions], dtype=object)
    full = model._kernel(
        model._tfidf(new_texts).astype(np.float64),
        new_embeddings.astype(np.float64),
        q,
        model.train_tfidf.astype(np.float64),
        model.train_embeddings.astype(np.float64),  # type: ignore[union-attr]
        model.train_questions,  # type: ignore[arg-type]
    ) @ model.dual.astype(np.float64) + model.mean
    scores = model.scores(new_texts, new_embeddings, new_questions)
    # float32 products on both sides; the fold only changes the order of the sums.
    assert np.abs(scores - full).max() < 1e-5
    assert np.abs(full).max() > 0.01  # the comparison is not of zeros


def test_refitting_forgets_the_folded_tfidf_coefficients() -> None:
    first = [f"answer {i} about {'parking' if i % 3 == 0 else 'staff'}" for i in range(30)]
    model, embeddings, questions = _fitted(first, 1)
    probe = ["parking and staff"]
    vector = embeddings[:1]
    before = model.scores(probe, vector, ["q0"])
    second = [f"reply {i} on {'staff' if i % 3 == 0 else 'parking'} today" for i in range(30)]
    targets = np.column_stack(
        [[float("parking" in t) for t in second], [float("staff" in t) for t in second]]
    )
    model.fit(second, embeddings, questions, targets)
    after = model.scores(probe, vector, ["q0"])
    fresh, _, _ = _fitted(second, 1)
    assert not np.allclose(before, after)
    assert np.allclose(after, fresh.scores(probe, vector, ["q0"]), atol=1e-6)
