"""Run a classifier backend on gold items: plain, trained, k-fold cross-validated, learning curve.

Learning backends (the local classifier) expose ``fit(examples, codebook)`` taking
``coder.embedded.training.LabelledExample`` objects; backends without ``fit`` (the LLM) are run
as they are. When a backend offers ``code_scores(responses, codebook)`` (a score for every code
that applies to each response), those scores replace the proposal's theme confidences in the
predictions, so key-point matching mAP ranks every argument by its best key point, not only
the arguments with a proposed key point.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coder.backends.base import Classifier, ProposalResult, get_classifier
from coder.errors import BackendError, CoderError
from eval.gold import GoldItem, load_gold, read_items
from eval.scoring import Prediction
from schemas import Codebook, Labels, Response

ClassifierFactory = Callable[[], Classifier]


def gold_labels(item: GoldItem) -> Labels:
    """A gold item's labels in the form reviewers' decisions take (training examples)."""
    return Labels(
        question=item.question,
        stance=item.stance,
        relevant=item.relevant is not False,
        themes=list(item.labels),
    )


def labelled_examples(items: Sequence[GoldItem]) -> list[Any]:
    """Gold items as the local classifier's training examples (uncertain pairs kept apart)."""
    from coder.embedded.training import LabelledExample

    return [
        LabelledExample(
            id=item.id,
            text=item.text,
            question=item.question,
            themes=list(item.labels) if item.relevant is not False else [],
            uncertain_themes=list(item.uncertain_labels),
            stance=item.stance,
            relevant=item.relevant,
            group=item.group,
        )
        for item in items
    ]


class CachingEncoder:
    """Wraps a sentence encoder and remembers every vector it made.

    k-fold CV and learning curves build one classifier per fold or size; sharing this
    encoder means each distinct text is encoded once per eval run, not once per fold.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.dim: int = inner.dim
        self._vectors: dict[str, np.ndarray] = {}
        self._spans: dict[tuple[str, Any], list[np.ndarray]] = {}
        if callable(getattr(inner, "encode_spans", None)):
            # Offered only when the inner encoder has it: the classifier checks for it.
            self.encode_spans = self._encode_spans

    def _encode_spans(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]] | None,
        batch_size: int = 64,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors of ``texts`` and of each text's character spans (cached per text+spans)."""
        if spans is None:
            vectors = self.encode(texts, batch_size)
            return vectors, [np.zeros((0, self.dim), np.float32) for _ in texts]
        keys = [(text, tuple(map(tuple, here))) for text, here in zip(texts, spans, strict=True)]
        missing = [index for index, key in enumerate(keys) if key not in self._spans]
        missing = list({keys[index]: index for index in missing}.values())
        if missing:
            vectors, per_text = self.inner.encode_spans(
                [texts[i] for i in missing], [spans[i] for i in missing], batch_size=batch_size
            )
            for row, index in enumerate(missing):
                self._spans[keys[index]] = [vectors[row], per_text[row]]
                self._vectors[texts[index]] = vectors[row]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), []
        return (
            np.vstack([self._spans[key][0] for key in keys]),
            [self._spans[key][1] for key in keys],
        )

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Vectors of ``texts`` (encoding only the ones not seen before)."""
        missing = list(dict.fromkeys(text for text in texts if text not in self._vectors))
        if missing:
            vectors = self.inner.encode(missing, batch_size=batch_size)
            for text, vector in zip(missing, vectors, strict=True):
                self._vectors[text] = vector
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self._vectors[text] for text in texts])


class BackendFactory:
    """Makes a fresh classifier per fold or curve point; local ones share one encoder.

    The shared encoder (:meth:`encoder`) also serves the naive baseline
    (``eval.baselines``), so an answer the model encoded is not encoded again.
    """

    def __init__(self, backend: str, model: str | None = None, **options: Any) -> None:
        self.backend = backend
        self.model = model
        self.options = options
        self._encoder: CachingEncoder | None = None
        #: every answer of the gold set, unlabelled, with its codebook: a classifier with
        #: ``prepare`` learns from them what a project's classifier learns from the
        #: project's imported answers (the zero-shot question prior), never their labels
        self.unlabelled: tuple[list[Response], Codebook] | None = None

    def encoder(self) -> CachingEncoder:
        """The run's caching MiniLM encoder (loaded on first use; BackendError if missing)."""
        if self._encoder is None:
            try:
                from coder.embedded.encoder import get_encoder
            except ImportError as error:
                raise BackendError(
                    f"backend 'local' (the MiniLM encoder) is not available: {error}"
                ) from None
            self._encoder = CachingEncoder(get_encoder())
        return self._encoder

    def __call__(self) -> Classifier:
        kwargs = dict(self.options)
        if self.model:
            kwargs["model"] = self.model
        if self.backend == "local" and "encoder" not in kwargs:
            kwargs["encoder"] = self.encoder()
        try:
            classifier = get_classifier(self.backend, **kwargs)
        except ImportError as error:
            raise BackendError(f"backend '{self.backend}' is not available: {error}") from None
        prepare = getattr(classifier, "prepare", None)
        if self.unlabelled is not None and callable(prepare):
            prepare(*self.unlabelled)
        return classifier


def factory(backend: str, model: str | None = None, **options: Any) -> BackendFactory:
    """A function making a fresh classifier (one per fold); local ones share one encoder."""
    return BackendFactory(backend, model, **options)


def fit(classifier: Classifier, train: Sequence[GoldItem], codebook: Codebook) -> bool:
    """Train a learning backend on gold items; False when the backend does not learn."""
    method = getattr(classifier, "fit", None)
    if method is None or not train:
        return False
    method(labelled_examples(train), codebook)
    return True


def predict(
    classifier: Classifier, items: Sequence[GoldItem], codebook: Codebook
) -> tuple[dict[str, Prediction], list[ProposalResult]]:
    """Predictions for ``items`` (failed items are left out: scored as predicting nothing)."""
    responses = [item.to_response() for item in items]
    results = classifier.propose(responses, codebook)
    predictions = {
        r.response_id: Prediction.from_proposal(r.proposal)
        for r in results
        if r.ok and r.proposal is not None
    }
    code_scores = getattr(classifier, "code_scores", None)
    if callable(code_scores) and predictions:
        for response, scores in zip(responses, code_scores(responses, codebook), strict=True):
            prediction = predictions.get(response.id)
            if prediction is not None and prediction.relevant is not False:
                prediction.scores = dict(scores)
    return predictions, results


def folds(items: Sequence[GoldItem], k: int, seed: int = 0) -> list[list[GoldItem]]:
    """Split items into k folds after a seeded shuffle."""
    order = list(items)
    random.Random(seed).shuffle(order)
    return [order[i::k] for i in range(k)]


def cv_splits(
    items: Sequence[GoldItem], k: int, seed: int = 0
) -> list[tuple[list[GoldItem], list[GoldItem]]]:
    """(training items, test fold) for each of k folds (the splits ``--cv`` runs on)."""
    if k < 2:
        raise BackendError("--cv needs at least 2 folds")
    if k > len(items):
        raise BackendError(f"--cv {k}: only {len(items)} items to split")
    parts = folds(items, k, seed)
    return [
        ([item for j, part in enumerate(parts) if j != i for item in part], test)
        for i, test in enumerate(parts)
    ]


def cross_validate(
    make: ClassifierFactory, items: Sequence[GoldItem], codebook: Codebook, k: int, seed: int = 0
) -> tuple[dict[str, Prediction], list[ProposalResult]]:
    """Pooled out-of-fold predictions from k-fold cross-validation."""
    pooled: dict[str, Prediction] = {}
    results: list[ProposalResult] = []
    for train, test in cv_splits(items, k, seed):
        classifier = make()
        fit(classifier, train, codebook)
        predictions, fold_results = predict(classifier, test, codebook)
        pooled.update(predictions)
        results += fold_results
    return pooled, results


def parse_sizes(text: str) -> list[int | None]:
    """'0,50,100,all' -> [0, 50, 100, None] (0 = untrained (zero-shot), None = all items)."""
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
        if value < 0:
            raise BackendError(f"--learning-curve: sizes cannot be negative, got {value}")
        sizes.append(value)
    if not sizes:
        raise BackendError("--learning-curve: give sizes, e.g. 50,100,200,all")
    return sizes


# --- item filters ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemFilter:
    """``PATH=VALUE[|VALUE...]``: keep items whose field at PATH is one of the values."""

    path: str
    values: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, option: str) -> ItemFilter:
        """Parse e.g. ``meta.source_split=train`` (``a|b`` for either value)."""
        path, sep, value = text.partition("=")
        if not sep or not path.strip():
            raise BackendError(
                f"{option} '{text}': expected PATH=VALUE, e.g. meta.source_split=train"
            )
        return cls(path.strip(), tuple(v.strip() for v in value.split("|")))

    def value_of(self, item: GoldItem) -> Any:
        """The item's value at the dotted path (None when absent)."""
        head, _, rest = self.path.partition(".")
        current: Any = getattr(item, head, None) if head != "meta" else item.meta
        for part in rest.split(".") if rest else []:
            current = current.get(part) if isinstance(current, dict) else None
        return current

    def matches(self, item: GoldItem) -> bool:
        """True when the item's value, as text, is one of the wanted values."""
        value = self.value_of(item)
        return value is not None and str(value) in self.values


def apply_filters(
    items: Sequence[GoldItem], filters: Sequence[ItemFilter], option: str
) -> list[GoldItem]:
    """Items matching every filter; an error when filters leave nothing."""
    kept = [item for item in items if all(f.matches(item) for f in filters)]
    if filters and not kept:
        shown = " ".join(f"{f.path}={'|'.join(f.values)}" for f in filters)
        raise BackendError(f"{option} {shown}: no item matches")
    return kept


def split_pool(
    items: Sequence[GoldItem], seed: int, test_share: float = 0.2
) -> tuple[list[GoldItem], list[GoldItem]]:
    """A seeded (training pool, held-out test) split of one item list."""
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    cut = max(1, int(round(len(shuffled) * (1 - test_share))))
    return shuffled[:cut], shuffled[cut:]


def learning_curve_pool(pool: Sequence[GoldItem], seed: int) -> list[GoldItem]:
    """The training pool in the seeded order every curve point takes its first N from."""
    ordered = list(pool)
    random.Random(seed + 1).shuffle(ordered)
    return ordered


def scored_items(
    gold_path: Path | None,
    codebook_path: Path | None,
    items_path: Path | None,
    test_filters: Sequence[str],
    limit: int | None,
) -> tuple[Codebook, list[GoldItem], list[GoldItem]]:
    """The gold set of an eval run: (codebook, every item, the items to score).

    The scored items are those matching every ``--test-filter``, the first ``limit`` of them.
    """
    if gold_path is None and (codebook_path is None or items_path is None):
        raise CoderError("give a gold folder (coder eval FOLDER) or --codebook FILE --items FILE")
    codebook, all_items = load_gold(gold_path, codebook=codebook_path, items=items_path)
    test_by = [ItemFilter.parse(text, "--test-filter") for text in test_filters]
    items = apply_filters(all_items, test_by, "--test-filter")
    if limit is not None:
        items = items[:limit]
    if not items:
        raise CoderError("no gold items to score")
    return codebook, all_items, items


def training_pool(
    all_items: list[GoldItem],
    scored: list[GoldItem],
    train_path: Path | None,
    train_by: list[ItemFilter],
    limit: int | None,
    warn: Callable[[str], None],
) -> list[GoldItem]:
    """Training items: --train FILE and/or --train-filter, never an item that is scored."""
    if train_path is None and not train_by:
        return []
    source = read_items(train_path) if train_path else all_items
    pool = apply_filters(source, train_by, "--train-filter")
    scored_ids = {item.id for item in scored}
    overlap = [item for item in pool if item.id in scored_ids]
    if overlap:
        # Training on a scored item would inflate every figure: leave those out.
        warn(f"{len(overlap)} training item(s) are also scored: left out of training.")
        pool = [item for item in pool if item.id not in scored_ids]
    if limit is not None:
        pool = pool[: limit * 4]
    if not pool:
        raise CoderError("no training items left (every training item is also scored)")
    return pool
