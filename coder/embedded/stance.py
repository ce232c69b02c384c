"""Stance in the embedded classifier: the trained model blended with the kernel model's
stance columns, the zero-shot match with the stance values' descriptions, and the
respondent's explicit opening ("Partly.", "Not really")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from coder.embedded.features import canonical_stances, content_words, stance_cue
from coder.embedded.models import PairModel, pair_features
from schemas import Codebook

if TYPE_CHECKING:
    from coder.embedded.classifier import LocalClassifier

#: A stance value reviewers gave fewer times than this keeps zero-shot behaviour: the
#: respondent's explicit opening ("Not really", "Partly") still gives it.
MIN_STANCE_EXAMPLES = 3
#: Kernel model columns that predict stance values (not codes) start with this.
STANCE_PREFIX = "\x00stance:"
#: Weight of the kernel model's stance columns against the stance logistic model.
STANCE_KERNEL_WEIGHT = 0.7


def stance_mapping(codebook: Codebook) -> dict[str, str]:
    """The codebook's stance values placed on the default scale (for explicit openings)."""
    if codebook.stance is None:
        return {}
    return canonical_stances([(v.id, v.label or "") for v in codebook.stance.values])


def stance_evidence(
    classifier: LocalClassifier,
    embeddings: np.ndarray,
    texts: Sequence[str],
    questions: Sequence[str | None],
    codebook: Codebook,
    pair_model: PairModel,
) -> np.ndarray:
    """Per stance value, the best pair probability among the codes of that stance."""
    codes, _ = classifier.code_vectors(codebook)
    stance_ids = codebook.stance_ids
    candidates = [
        [codebook.theme_ids.index(t.id) for t in codebook.themes_for(q)] for q in questions
    ]
    words = [content_words(text) for text in texts]
    features, pairs = pair_features(embeddings, words, candidates, codes)
    probabilities = pair_model.probabilities(features)
    evidence = np.zeros((len(texts), len(stance_ids) + 1))
    categories = [t.category for t in codebook.themes]
    for (row, code_position), probability in zip(pairs, probabilities, strict=True):
        category = categories[code_position]
        if category in stance_ids:
            column = stance_ids.index(category)
            evidence[row, column] = max(evidence[row, column], probability)
    top_two = np.sort(evidence[:, : len(stance_ids)], axis=1)
    if len(stance_ids) >= 2:
        evidence[:, -1] = top_two[:, -1] - top_two[:, -2]
    return evidence * 4.0  # on the scale of the other features


def stance_probabilities(
    classifier: LocalClassifier,
    texts: Sequence[str],
    embeddings: np.ndarray,
    questions: Sequence[str | None],
    codebook: Codebook,
    kernel_scores: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Per row, the probability of each stance value, and the values (columns) in order."""
    state = classifier.state
    stance_ids = codebook.stance_ids
    if classifier._mode("stance") == "pairs":
        # The stance cross-encoder (coder/embedded/stance_pairs.py): one pass over
        # (question text, answer) pairs.
        from coder.embedded.stance_pairs import question_texts
        from coder.embedded.stance_pairs_gate import stance_pair_model

        pairs = stance_pair_model(classifier)
        if set(pairs.classes) <= set(stance_ids):
            firsts = question_texts(questions, codebook)
            return pairs.probabilities(firsts, texts), list(pairs.classes)
    model = state.stance_model if state is not None else None
    if classifier._mode("stance") == "zero-shot":
        model = None
    if model is not None and set(model.classes) <= set(stance_ids):
        if model.model is None:  # one class only in training
            return np.ones((len(texts), 1)), list(model.classes)
        extra = None
        if state is not None and state.stance_uses_themes and state.pair_model is not None:
            extra = stance_evidence(
                classifier, embeddings, texts, questions, codebook, state.pair_model
            )
        probabilities = model.probabilities(texts, embeddings, questions, extra)
        weight = state.params.get("stance_kernel_weight", 0.0) if state else 0.0
        unseen = (
            np.array([str(q) not in state.stance_questions for q in questions])
            if state
            else np.zeros(len(texts), bool)
        )
        if state is not None and state.theme_model is not None and kernel_scores is not None:
            # Stance is also a column set of the kernel model; blend the two views.
            labels = state.theme_model.labels
            columns = [
                labels.index(STANCE_PREFIX + value) if STANCE_PREFIX + value in labels else -1
                for value in model.classes
            ]
            if weight > 0 and min(columns) >= 0:
                kernel = np.clip(kernel_scores[:, columns], 0.0, None) + 1e-3
                kernel /= kernel.sum(axis=1, keepdims=True)
                seen = ~unseen
                probabilities[seen] = (1 - weight) * probabilities[seen] + weight * kernel[seen]
        return probabilities, list(model.classes)
    # Zero-shot: similarity of "question + answer" to each stance value's description.
    assert codebook.stance is not None
    descriptions = [
        f"{value.label or value.id.replace('_', ' ')}. {value.description}".strip()
        for value in codebook.stance.values
    ]
    value_vectors = classifier.embed(descriptions)
    framed = [
        f"{codebook.question_text(q)} {text}".strip()
        for q, text in zip(questions, texts, strict=True)
    ]
    scores = classifier.embed(framed) @ value_vectors.T
    probabilities = np.exp(scores * 10)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return probabilities, stance_ids


def choose_stances(
    classifier: LocalClassifier,
    texts: Sequence[str],
    embeddings: np.ndarray,
    questions: Sequence[str | None],
    codebook: Codebook,
    kernel_scores: np.ndarray | None,
) -> tuple[list[str | None], np.ndarray]:
    """Per row, the proposed stance (None where the question has none) and its confidence."""
    state = classifier.state
    count = len(texts)
    stance_ids = codebook.stance_ids
    stances: list[str | None] = [None] * count
    stance_confidence = np.zeros(count)
    if stance_ids:
        stance_probs, stance_classes = stance_probabilities(
            classifier, texts, embeddings, questions, codebook, kernel_scores
        )
        best = stance_probs.argmax(axis=1)
        for row in range(count):
            stances[row] = stance_classes[best[row]]
            stance_confidence[row] = stance_probs[row, best[row]]
        stance_mode = classifier._mode("stance")
        mapping = stance_mapping(codebook)
        trained_stance = state is not None and state.stance_model is not None
        counts = (getattr(state, "stance_counts", None) or {}) if state is not None else {}
        for row, text in enumerate(texts):
            # Zero-shot similarity to stance descriptions is near chance; an explicit
            # opening ("Partly.", "Yes, but", "Not really") is the respondent's own
            # answer. With a trained model it wins when the gate chose so, and always
            # for a value reviewers gave too rarely for the model to learn.
            cue = stance_cue(text, stance_ids, mapping)
            if cue is None:
                continue
            if (
                not trained_stance
                or stance_mode not in ("trained", "pairs")
                or counts.get(cue, 0) < MIN_STANCE_EXAMPLES
            ):
                stances[row] = cue
                stance_confidence[row] = max(float(stance_confidence[row]), 0.7)

    # A question that asks for ideas, not a view (has_stance: false), gets no stance.
    for row, question in enumerate(questions):
        if stance_ids and not codebook.has_stance(question):
            stances[row] = None
            stance_confidence[row] = 1.0
    return stances, stance_confidence
