"""Steadier per-code thresholds for the kernel theme model (KernelParams.steady_thresholds)."""

from __future__ import annotations

import numpy as np
import pytest

from coder.embedded import kernel_model
from coder.embedded.kernel_model import KernelParams, KernelThemeModel, steady_thresholds
from coder.embedded.model_tools import best_f1_threshold


def scored_codes(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Held-out scores of one common code (400 positives) and one rare code (6 positives)
    whose best-F1 threshold is set by one lucky negative scoring above every positive."""
    rng = np.random.default_rng(seed)
    rows = 2000
    truth = np.zeros((rows, 2))
    truth[:400, 0] = 1
    truth[:6, 1] = 1
    scores = rng.normal(0.0, 0.1, (rows, 2))
    scores[:400, 0] += 0.6
    scores[:6, 1] = [0.30, 0.32, 0.34, 0.36, 0.38, 0.40]
    scores[6:, 1] = np.minimum(scores[6:, 1], 0.2)
    scores[1000, 1] = 0.5  # the lucky negative
    return scores, truth


def test_a_common_code_keeps_about_its_own_threshold() -> None:
    scores, truth = scored_codes()
    own = best_f1_threshold(scores[:, 0], truth[:, 0], 0.1)[0]
    steady = steady_thresholds(scores, truth, 0.1)
    assert abs(steady[0] - own) < 0.03


def test_a_rare_codes_threshold_moves_toward_the_pooled_share() -> None:
    scores, truth = scored_codes()
    own = best_f1_threshold(scores[:, 1], truth[:, 1], 0.1)[0]
    steady = steady_thresholds(scores, truth, 0.1)
    # Own: halfway between the lowest positive (0.30) and the highest other score (0.20),
    # 0.71 of the mean positive score; the common code's sits at about half of its mean
    # positive score, so the rare code's is pulled lower.
    assert own == 0.25
    assert 0.1 <= steady[1] < own - 0.01


def test_floor_and_codes_without_positives() -> None:
    scores, truth = scored_codes()
    truth[:, 1] = 0
    steady = steady_thresholds(scores * 0.01, truth, 0.1)
    assert (steady >= 0.1).all()
    # No positive: the same threshold as before (1.0: the code is never given).
    assert steady[1] == best_f1_threshold(scores[:, 1] * 0.01, truth[:, 1], 0.1)[0] == 1.0


def test_the_same_data_gives_the_same_thresholds() -> None:
    scores, truth = scored_codes(3)
    assert np.array_equal(
        steady_thresholds(scores, truth, 0.1), steady_thresholds(scores, truth, 0.1)
    )


def fit_small(params: KernelParams) -> KernelThemeModel:
    rng = np.random.default_rng(0)
    texts = [f"parking was {'bad' if i % 5 == 0 else 'fine'} and staff {i % 7}" for i in range(80)]
    embeddings = rng.normal(size=(80, 8))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    targets = np.zeros((80, 2))
    targets[::5, 0] = 1
    targets[::7, 1] = 1
    return KernelThemeModel(labels=["parking", "staff"], params=params).fit(
        texts, embeddings, ["q"] * 80, targets
    )


def test_kernel_model_steadies_thresholds_of_large_fits_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = fit_small(KernelParams())  # off unless asked for (a fine-tuned encoder asks)
    assert plain.held_out is not None and plain.thresholds is not None
    # 80 answers: fewer than STEADY_MIN_ROWS, each code keeps its own threshold.
    assert kernel_model.STEADY_MIN_ROWS > 80
    asked = KernelParams(steady_thresholds=True)
    assert np.array_equal(fit_small(asked).thresholds, plain.thresholds)
    monkeypatch.setattr(kernel_model, "STEADY_MIN_ROWS", 50)
    steady = fit_small(asked)
    truth = np.zeros((80, 2))
    truth[::5, 0] = 1
    truth[::7, 1] = 1
    expected = steady_thresholds(plain.held_out, truth, KernelParams().threshold_floor)
    assert np.allclose(steady.thresholds, expected)
    assert not np.allclose(steady.thresholds, plain.thresholds)
    assert plain.cv_f1 is not None and steady.cv_f1 is not None
    assert np.allclose(plain.cv_f1, steady.cv_f1)  # the held-out F1 reported is each code's own
