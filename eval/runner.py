"""Run a classifier backend on gold items: plain, k-fold cross-validated, learning curve."""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Sequence
from typing import Any

from coder.backends.base import Classifier, ProposalResult, get_classifier
from coder.errors import BackendError
from eval.gold import GoldItem
from eval.scoring import Prediction
from schemas import Codebook, Labels

ClassifierFactory = Callable[[], Classifier]


def gold_labels(item: GoldItem) -> Labels:
    """A gold item's labels in the form reviewers' decisions take (training examples)."""
    return Labels(
        question=item.question,
        stance=item.stance,
        relevant=item.relevant is not False,
        themes=list(item.labels),
    )


def factory(backend: str, model: str | None = None, **options: Any) -> ClassifierFactory:
    """A function making a fresh classifier (one per fold)."""

    def make() -> Classifier:
        kwargs = dict(options)
        if model:
            kwargs["model"] = model
        try:
            return get_classifier(backend, **kwargs)
        except ImportError as error:
            raise BackendError(f"backend '{backend}' is not available: {error}") from None

    return make


def fit(classifier: Classifier, train: Sequence[GoldItem], codebook: Codebook) -> None:
    """Give a learning backend its labelled examples (a no-op for backends that don't learn)."""
    method = getattr(classifier, "fit", None)
    if method is None or not train:
        return
    responses = [item.to_response() for item in train]
    labels = [gold_labels(item) for item in train]
    params = list(inspect.signature(method).parameters)
    if "codebook" in params:
        method(responses, labels, codebook=codebook)
    else:
        method(responses, labels)


def predict(
    classifier: Classifier, items: Sequence[GoldItem], codebook: Codebook
) -> tuple[dict[str, Prediction], list[ProposalResult]]:
    """Predictions for ``items`` (failed items are left out: scored as predicting nothing)."""
    results = classifier.propose([item.to_response() for item in items], codebook)
    predictions = {
        r.response_id: Prediction.from_proposal(r.proposal)
        for r in results
        if r.ok and r.proposal is not None
    }
    return predictions, results


def folds(items: Sequence[GoldItem], k: int, seed: int = 0) -> list[list[GoldItem]]:
    """Split items into k folds after a seeded shuffle."""
    order = list(items)
    random.Random(seed).shuffle(order)
    return [order[i::k] for i in range(k)]


def cross_validate(
    make: ClassifierFactory, items: Sequence[GoldItem], codebook: Codebook, k: int, seed: int = 0
) -> tuple[dict[str, Prediction], list[ProposalResult]]:
    """Pooled out-of-fold predictions from k-fold cross-validation."""
    if k < 2:
        raise BackendError("--cv needs at least 2 folds")
    parts = folds(items, k, seed)
    pooled: dict[str, Prediction] = {}
    results: list[ProposalResult] = []
    for i, test in enumerate(parts):
        train = [item for j, part in enumerate(parts) if j != i for item in part]
        classifier = make()
        fit(classifier, train, codebook)
        predictions, fold_results = predict(classifier, test, codebook)
        pooled.update(predictions)
        results += fold_results
    return pooled, results


def parse_sizes(text: str) -> list[int | None]:
    """'50,100,all' -> [50, 100, None] (None = all training items)."""
    sizes: list[int | None] = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part == "all":
            sizes.append(None)
            continue
        try:
            value = int(part)
        except ValueError:
            raise BackendError(f"--learning-curve: '{part}' is not a number or 'all'") from None
        if value <= 0:
            raise BackendError(f"--learning-curve: sizes must be positive, got {value}")
        sizes.append(value)
    return sizes
