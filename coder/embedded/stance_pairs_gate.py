"""Whether a trained state proposes stance with its cross-encoder (field mode ``pairs``).

The cross-encoder (:mod:`coder.embedded.stance_pairs`) held back a seeded 10% of the stance
labels. The classifier is fitted again without them (with its own gate, so "current" means
what the project would otherwise get), and both propose those answers: the cross-encoder
is chosen only when it is clearly better item by item (``gate._clearly_better``: more than
one standard error of the paired differences). So on a set where the sentence-level stance
model is as good or better (NHS sentiment), the current model stays.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from coder.embedded.gate import _clearly_better, _responses, stance_item_correct
from coder.embedded.stance_pairs import STATE_KEY, PairStanceModel, load_pair_model, question_texts
from coder.embedded.training import LabelledExample
from schemas import Codebook

if TYPE_CHECKING:
    from coder.embedded.classifier import LocalClassifier


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
    report: dict[str, Any] = {"model": model.name, "trained_on": model.record.get("metrics", {})}
    report["trained_on"] = {
        key: value for key, value in report["trained_on"].items() if key != "history"
    }
    classes_fit = set(model.classes) <= set(codebook.stance_ids)
    if not held or not classes_fit:
        report["chosen"] = False
        report["why"] = "no held-back answers" if not held else "stance values changed"
        return report
    keys = {_key(example) for example in held}
    train = [example for example in examples if _key(example) not in keys]
    sibling = classifier._sibling()
    fit_without(sibling, train)
    results = sibling.propose(_responses(held), codebook)
    current = stance_item_correct(held, [result.proposal for result in results], codebook)
    pairs = pair_correct(model, held, codebook)
    chosen = bool(_clearly_better(pairs, current))
    if chosen:
        state.fields["stance"] = "pairs"
    report.update(
        {
            "n_held_back": len(pairs),
            "pairs_accuracy": round(float(pairs.mean()), 4) if len(pairs) else None,
            "current_accuracy": round(float(current.mean()), 4) if len(current) else None,
            "current_mode": (sibling.state.fields if sibling.state else {}).get("stance"),
            "chosen": chosen,
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
    return report


def stance_pair_model(classifier: LocalClassifier) -> PairStanceModel:
    """The cross-encoder a state names: the one in memory, else the project's stored one."""
    state = classifier.state
    assert state is not None
    name = str(state.params.get(STATE_KEY))
    model = classifier.stance_pairs
    if model is not None and model.name == name:
        return model
    return load_pair_model(classifier.model_store, name)
