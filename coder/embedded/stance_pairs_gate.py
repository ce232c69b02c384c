"""Whether a trained state proposes stance with its cross-encoder (field mode ``pairs``).

The cross-encoder (:mod:`coder.embedded.stance_pairs`) held back some stance labels: whole
questions when the answers span several, else a seeded random 10%
(:mod:`coder.embedded.stance_pairs_holdout`). The classifier is fitted again without them
(and without any answer to a held-back question, so neither model has seen it; with its own
gate, so "current" means what the project would otherwise get), and both propose those
answers. The cross-encoder is chosen only when it is better by at least ``PAIR_MIN_GAIN``
and by more than ``PAIR_GATE_Z`` standard errors of the paired per-answer differences:
stricter than the field gate's 0.5 because it costs an extra encoder pass per answer
(proposals at about half the speed), so a gain within noise is not worth it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from coder.embedded.gate import _responses, stance_item_correct
from coder.embedded.stance_pairs import STATE_KEY, PairStanceModel, question_texts, state_pair_model
from coder.embedded.training import LabelledExample
from schemas import Codebook

if TYPE_CHECKING:
    from coder.embedded.classifier import LocalClassifier

#: The cross-encoder must beat the current model by this much held-back accuracy ...
PAIR_MIN_GAIN = 0.01
#: ... and by more than this many standard errors of the paired differences (a one-sided
#: 95% test). On NHS the cross-encoder led by 2.65 points held back at 1.04 standard errors
#: and then lost by 0.9 points on the test answers: a one-standard-error lead is noise.
PAIR_GATE_Z = 1.645


def _key(example: LabelledExample) -> tuple[str, str | None, str | None]:
    return (example.text, example.question, example.stance)


def pair_correct(
    model: PairStanceModel, examples: Sequence[LabelledExample], codebook: Codebook
) -> np.ndarray:
    """Per scored example (as :func:`gate.stance_item_correct` counts them): 1 if right."""
    scored = [
        example
        for example in examples
        if example.relevant is not False
        and example.stance is not None
        and codebook.has_stance(example.question)
    ]
    probabilities = model.probabilities(
        question_texts([e.question for e in scored], codebook), [example.text for example in scored]
    )
    predicted = [model.classes[i] for i in probabilities.argmax(1)]
    return np.array([float(p == e.stance) for p, e in zip(predicted, scored, strict=True)])


def pairs_win(pairs: np.ndarray, current: np.ndarray) -> tuple[bool, dict[str, float]]:
    """Whether the cross-encoder's per-answer scores clearly beat the current model's,
    with the gain and its standard error (for the report)."""
    if len(pairs) < 2 or len(pairs) != len(current):
        return False, {}
    difference = pairs - current
    gain = float(difference.mean())
    noise = float(difference.std(ddof=1)) / float(np.sqrt(len(difference)))
    figures = {"gain": round(gain, 4), "standard_error": round(noise, 4)}
    return gain >= PAIR_MIN_GAIN and gain > PAIR_GATE_Z * noise, figures


def gate_report(model: PairStanceModel) -> dict[str, Any]:
    """A cross-encoder gate's report as it starts: the model and what it was trained on."""
    trained_on = model.record.get("metrics", {})
    return {
        "model": model.name,
        "trained_on": {key: value for key, value in trained_on.items() if key != "history"},
    }


def refit_without_held(
    classifier: LocalClassifier,
    examples: Sequence[LabelledExample],
    model: PairStanceModel,
    fit_without: Any,
    key: Callable[[LabelledExample], Hashable],
) -> tuple[LocalClassifier, set[str | None]]:
    """A sibling of ``classifier`` fitted (``fit_without(sibling, train)``) on ``examples``
    without the cross-encoder's held-back answers (matched by ``key``) and questions, so
    its figures on them are out of sample; and the held-back questions."""
    keys = {key(example) for example in model.held_examples}
    unseen = set(model.held_questions)
    train = [
        example
        for example in examples
        if key(example) not in keys and not (unseen and example.question in unseen)
    ]
    sibling = classifier._sibling()
    fit_without(sibling, train)
    return sibling, unseen


def held_back_by(unseen: set[str | None]) -> dict[str, Any]:
    """How a gate's held-back answers were chosen, for its report."""
    return {
        "held_back_by": "questions" if unseen else "random",
        "held_back_questions": sorted(str(question) for question in unseen),
    }


def gate_stance_pairs(
    classifier: LocalClassifier,
    examples: Sequence[LabelledExample],
    codebook: Codebook,
    fit_without: Any,
) -> dict[str, Any]:
    """Set ``fields['stance'] = 'pairs'`` when the cross-encoder clearly wins; the report.

    ``fit_without(classifier, examples)`` fits a sibling classifier on the given examples
    (the caller's settings), so its proposals on the held-back answers are out of sample.
    """
    started = time.perf_counter()
    state, model = classifier.state, classifier.stance_pairs
    assert state is not None and model is not None
    held = list(model.held_examples)
    report = gate_report(model)
    classes_fit = set(model.classes) <= set(codebook.stance_ids)
    if not held or not classes_fit:
        report["chosen"] = False
        report["why"] = "no held-back answers" if not held else "stance values changed"
        return report
    sibling, unseen = refit_without_held(classifier, examples, model, fit_without, _key)
    results = sibling.propose(_responses(held), codebook)
    current = stance_item_correct(held, [result.proposal for result in results], codebook)
    pairs = pair_correct(model, held, codebook)
    chosen, figures = pairs_win(pairs, current)
    if chosen:
        state.fields["stance"] = "pairs"
    report.update(
        {
            "n_held_back": len(pairs),
            "pairs_accuracy": round(float(pairs.mean()), 4) if len(pairs) else None,
            "current_accuracy": round(float(current.mean()), 4) if len(current) else None,
            "current_mode": (sibling.state.fields if sibling.state else {}).get("stance"),
            **figures,
            **held_back_by(unseen),
            "chosen": chosen,
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
    return report


def stance_pair_model(classifier: LocalClassifier) -> PairStanceModel:
    """The cross-encoder a state names: the one in memory, else the project's stored one."""
    return state_pair_model(classifier, STATE_KEY, classifier.stance_pairs)
