"""The trained pieces of the embedded classifier: leave-one-out scores, thresholds, pair
features, and the prior that keeps rarely used codes from being proposed everywhere."""

from __future__ import annotations

import numpy as np

from coder.embedded.classifier import LocalClassifier
from coder.embedded.models import (
    CodeVectors,
    KernelParams,
    KernelThemeModel,
    PairModel,
    TrainedState,
    best_f1_threshold,
    choose_regularisation,
    leave_one_out,
    pair_features,
)


def test_closed_form_leave_one_out_equals_refitting_without_each_row() -> None:
    rng = np.random.default_rng(1)
    points = rng.normal(size=(30, 5))
    kernel = points @ points.T
    targets = rng.integers(0, 2, size=(30, 3)).astype(float)
    dual, held_out = leave_one_out(kernel, targets, ridge=2.0)
    assert np.allclose(dual, np.linalg.solve(kernel + 2.0 * np.eye(30), targets))
    for row in range(30):
        keep = np.arange(30) != row
        refit = np.linalg.solve(kernel[np.ix_(keep, keep)] + 2.0 * np.eye(29), targets[keep])
        assert np.allclose(held_out[row], kernel[row, keep] @ refit)


def test_kernel_model_thresholds_ignore_the_codebook_examples() -> None:
    # Rows appended from the codebook's examples are fitted on, but thresholds are tuned
    # on real responses only: the positives they add must not count as missed recall.
    rng = np.random.default_rng(0)
    texts = [f"answer {i} about {'parking' if i % 5 == 0 else 'staff'}" for i in range(60)]
    embeddings = rng.normal(size=(60, 8)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    targets = np.array([[1.0 if i % 5 == 0 else 0.0] for i in range(60)])
    extra = texts + ["parking example"] * 20
    extra_embeddings = np.vstack([embeddings, embeddings[:20]])
    extra_targets = np.vstack([targets, np.ones((20, 1))])
    real = np.arange(80) < 60
    model = KernelThemeModel(labels=["parking"], params=KernelParams()).fit(
        extra, extra_embeddings, [None] * 80, extra_targets, tune_rows=real
    )
    assert model.cv_f1 is not None and model.cv_f1[0] == 1.0  # the word separates them
    scores = model.scores(texts, embeddings, [None] * 60)
    assert ((scores[:, 0] > model.thresholds[0]) == (targets[:, 0] == 1)).all()


def test_f_beta_threshold_favours_recall_when_asked() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    truth = np.array([1, 0, 0, 1, 0, 0])
    strict, f1 = best_f1_threshold(scores, truth, floor=0.0)
    lenient, _ = best_f1_threshold(scores, truth, floor=0.0, beta=3.0)
    assert np.isclose(strict, 0.85) and np.isclose(f1, 2 / 3)
    assert np.isclose(lenient, 0.55)


def _codes() -> CodeVectors:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(4, 6)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return CodeVectors(
        ids=["a", "b", "c", "d"],
        definition=vectors,
        label=vectors[::-1].copy(),
        examples=[np.zeros((0, 6), np.float32)] * 4,
        words=[{"a"}, {"b"}, {"c"}, {"d"}],
        n_head=[2] * 4,
        categories=["pro", "pro", "con", "con"],
    )


def test_pair_features_for_a_subset_match_those_computed_against_every_candidate() -> None:
    codes = _codes()
    responses = np.random.default_rng(4).normal(size=(3, 6)).astype(np.float32)
    words = [{"a"}, set(), {"c", "d"}]
    candidates = [[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]]
    full, pairs = pair_features(responses, words, candidates, codes)
    keep = [[1], [], [0, 3]]
    subset, kept = pair_features(responses, words, candidates, codes, keep=keep)
    assert kept == [(0, 1), (2, 0), (2, 3)]
    assert np.array_equal(subset, full[[pairs.index(pair) for pair in kept]])
    # Ranks and centres depend on the candidate list: scoring a subset alone differs.
    alone, _ = pair_features(responses, words, keep, codes)
    assert not np.allclose(alone, subset)


def test_rarely_used_codes_are_damped_and_unused_codes_are_not() -> None:
    classifier = LocalClassifier(encoder=None, use_stored_model=False)
    classifier.state = TrainedState(
        version="t",
        encoder_name="x",
        trained_at="now",
        n_examples=1000,
        params={},
        pair_model=PairModel(threshold=0.5, base_rate=0.05),
        rare_codes={"a": (1, 1000), "b": (2, 10)},
    )
    codes = _codes()
    probabilities = np.array([0.9, 0.9, 0.9])
    damped = classifier._rare_code_prior(probabilities, [(0, 0), (0, 1), (0, 2)], codes)
    # 'a': used once in 1,000 answers -> far below the pair threshold; 'b': 2 in 10 is
    # above the base rate -> unchanged; 'c': never used (maybe new) -> unchanged.
    assert damped[0] < 0.25
    assert np.allclose(damped[1:], 0.9)


def test_stance_regularisation_is_chosen_by_held_out_accuracy() -> None:
    rng = np.random.default_rng(5)
    labels = ["pro", "con"] * 40
    # The embedding carries the label; the words are noise shared by both classes.
    embeddings = np.array(
        [[1.0 if label == "pro" else -1.0, *rng.normal(size=7)] for label in labels]
    )
    texts = [f"argument number {i % 7}" for i in range(80)]
    questions = [f"motion {i % 4}" for i in range(80)]
    # Near-zero C cannot learn the signal; C = 10 can, on motions it did not train on.
    for choices in ((1e-4, 10.0), (10.0, 1e-4)):
        assert choose_regularisation(texts, embeddings, questions, labels, None, choices) == 10.0
    # Too little data to hold anything out: the first choice.
    tiny = choose_regularisation(
        texts[:10], embeddings[:10], questions[:10], labels[:10], None, (2.0, 0.5)
    )
    assert tiny == 2.0
