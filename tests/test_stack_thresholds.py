"""The stacked themes model's per-code thresholds.

One threshold for every code proposes rare codes too seldom; a code's own threshold from a
few examples is noise. ``shrunk_thresholds`` blends the two by the code's count of
examples.
"""

from __future__ import annotations

import numpy as np

from coder.embedded import state_io
from coder.embedded.classifier import LocalClassifier
from coder.embedded.model_tools import best_f1_threshold
from coder.embedded.stack_model import THRESHOLD_PRIOR_COUNT, StackModel, shrunk_thresholds
from tests.test_safe_models import codebook, examples, new_responses


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def test_a_code_without_examples_keeps_the_shared_threshold() -> None:
    scores = np.array([0.9, 0.2, 0.8, 0.1, 0.3, 0.6])
    truth = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    code_of_row = np.array([0, 0, 0, 1, 1, 1])  # code 1 has no positive
    result = shrunk_thresholds(scores, truth, code_of_row, 3, shared=0.4)
    assert result[1] == 0.4 and result[2] == 0.4  # code 2 has no rows at all
    assert result[0] != 0.4


def test_the_weight_of_a_codes_own_threshold_grows_with_its_examples() -> None:
    rng = np.random.default_rng(0)

    def threshold_with(positives: int) -> tuple[float, float]:
        truth = np.array([1.0] * positives + [0.0] * 200)
        # This code's positives score low (a rare code): its own best threshold is low.
        scores = np.concatenate([rng.uniform(0.15, 0.25, positives), rng.uniform(0.0, 0.1, 200)])
        own, _ = best_f1_threshold(scores, truth, floor=0.05)
        blended = shrunk_thresholds(scores, truth, np.zeros(len(truth), int), 1, shared=0.5)[0]
        return own, float(blended)

    own, few = threshold_with(2)
    own_many, many = threshold_with(200)
    # In log-odds, n / (n + prior) of the way from the shared threshold to the code's own.
    expected_few = _logit(0.5) + 2 / (2 + THRESHOLD_PRIOR_COUNT) * (_logit(own) - _logit(0.5))
    assert np.isclose(_logit(few), expected_few)
    assert own < few < 0.5
    assert abs(many - own_many) < abs(few - own)  # many examples: close to its own


def test_a_fitted_stack_model_has_a_threshold_per_code_and_stores_it() -> None:
    classifier = LocalClassifier(None, use_stored_model=False)
    state = classifier.fit(examples(), codebook(), gate=False)
    stack = state.stack_model
    assert stack is not None and stack.thresholds is not None
    assert stack.thresholds.shape == (len(stack.codes),)
    assert ((stack.thresholds >= 0.05) & (stack.thresholds < 1.0)).all()
    loaded = state_io.loads(state_io.dumps(state))
    assert loaded.stack_model is not None
    assert np.array_equal(loaded.stack_model.code_thresholds(), stack.code_thresholds())
    # The stacked mode proposes with them end to end.
    state.fields = {"themes": "stacked", "stance": "trained", "relevance": "trained"}
    results = classifier.propose(new_responses(), codebook())
    parking = results[1].proposal  # "Parking costs a fortune"
    assert parking is not None and [t.code for t in parking.themes] == ["parking"]


def test_a_model_stored_without_per_code_thresholds_uses_the_shared_one() -> None:
    old = StackModel(codes=["a", "b", "c"], threshold=0.3)
    assert old.code_thresholds().tolist() == [0.3, 0.3, 0.3]
