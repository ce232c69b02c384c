"""Relevance in the embedded classifier: the plain rules for blanks and non-answers, the
reviewers' model when trained, else off-topic matching (zero-shot)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from coder.embedded.features import OFF_TOPIC_CHATTER, non_answer_reason, stance_cue, stance_only
from coder.embedded.stance import stance_mapping
from coder.relevance_reasons import off_topic_like
from schemas import Codebook

if TYPE_CHECKING:
    from coder.embedded.classifier import LocalClassifier

#: Zero-shot relevance: a response is off-topic when it is closer, by at least this cosine
#: margin, to an off-topic prototype (the codebook's not-relevant examples and the built-in
#: workshop chatter below) than to its question and every code that applies to it.
OFF_TOPIC_MARGIN = 0.05
#: Off-topic matches are sure only when close to an off-topic example. On the gold dev sets
#: (rapid_insight_dev, NHS, ArgKP: 28 matches, zero-shot) every match at cosine 0.48 or more
#: was off-topic (7 of 7), none of 4 between 0.42 and 0.48, 2 of 17 below (NHS "Problem
#: solved." sits at 0.35 from "The connection keeps dropping."). The label stands; its
#: confidence (:func:`off_topic_confidence`) puts the doubtful ones first in review.
OFF_TOPIC_SURE = 0.42
#: Confidence of the plain rules (blank, "did not answer", punctuation, cross-references).
RULE_CONFIDENCE = 0.99


def off_topic_confidence(cosine: float) -> float:
    """Confidence in an off-topic match at ``cosine`` to its off-topic example: 0.5 up to
    :data:`OFF_TOPIC_SURE`, rising to the plain rules' 0.99 at about 0.62."""
    return float(np.clip(0.5 + 2.5 * (cosine - OFF_TOPIC_SURE), 0.5, RULE_CONFIDENCE))


def _unclear(mapping: dict[str, str]) -> str | None:
    """The scale's "no view" value (``unclear`` on coder's default scale)."""
    return mapping.get("unclear") if mapping else "unclear"


def decide_relevance(
    classifier: LocalClassifier,
    texts: Sequence[str],
    questions: Sequence[str | None],
    embeddings: np.ndarray,
    codebook: Codebook,
    similarity: np.ndarray,
    candidates: Sequence[Sequence[int]],
) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Per row: relevant or not, the confidence, and the reason it is not (None if it is).

    Trained relevance: the reviewers' model, else only the plain rules (their labels gave
    no pattern beyond blanks and "did not answer" to learn); zero-shot relevance adds
    cross-references and off-topic matching (see :func:`zero_shot_relevance`).
    """
    state = classifier.state
    trained_relevance = state is not None and classifier._mode("relevance") == "trained"
    reasons = [non_answer_reason(text, soft=not trained_relevance) for text in texts]
    count = len(texts)
    relevant = np.ones(count, dtype=bool)
    relevance_confidence = np.full(count, 0.8)
    if trained_relevance:
        if state is not None and state.relevance_model is not None:
            model_probs = state.relevance_model.probabilities(texts, embeddings, questions)
            true_column = state.relevance_model.classes.index("True")
            relevant = model_probs[:, true_column] >= 0.5
            relevance_confidence = np.maximum(
                model_probs[:, true_column], 1 - model_probs[:, true_column]
            )
    matched: dict[int, float] = {}
    if not trained_relevance:
        matched = zero_shot_relevance(
            classifier, embeddings, similarity, codebook, reasons, texts, questions, candidates
        )
    for row, reason in enumerate(reasons):
        if reason is not None:
            relevant[row] = False
            relevance_confidence[row] = matched.get(row, RULE_CONFIDENCE)
    return relevant, relevance_confidence, reasons


def zero_shot_relevance(
    classifier: LocalClassifier,
    embeddings: np.ndarray,
    similarity: np.ndarray,
    codebook: Codebook,
    reasons: list[str | None],
    texts: Sequence[str] = (),
    questions: Sequence[str | None] = (),
    candidates: Sequence[Sequence[int]] = (),
) -> dict[int, float]:
    """Rule out responses that are about something else (no trained relevance model); return
    the confidence of each off-topic match by row (:func:`off_topic_confidence`).

    A response is off-topic when it is closer (by OFF_TOPIC_MARGIN) to an off-topic
    prototype — the codebook's ``relevance.not_relevant_examples`` and the built-in
    workshop chatter (logistics, technical trouble, test messages, thanks) — than to its
    own question and to every code that applies to it. Answers that give a view ("Yes",
    "Not really - ...") are never ruled out: a bare stance is a relevant answer.
    """
    matched: dict[int, float] = {}
    if not len(embeddings):
        return matched
    examples = list(codebook.relevance.not_relevant_examples) if codebook.relevance else []
    prototypes = list(dict.fromkeys([*examples, *OFF_TOPIC_CHATTER]))
    off_topic = embeddings @ classifier.embed(prototypes).T
    question_vectors = classifier.embed([codebook.question_text(q) or "" for q in questions])
    to_question = (embeddings * question_vectors).sum(axis=1)
    stance_ids = codebook.stance_ids
    mapping = stance_mapping(codebook)
    for row in range(len(embeddings)):
        if reasons[row] is not None:
            continue
        text = texts[row] if row < len(texts) else ""
        cue = stance_cue(text, stance_ids, mapping)
        # A view ("Yes", "Partly", "Not really") is an answer; "I don't know" is left to the
        # off-topic test like any other text.
        if stance_only(text) or (cue is not None and cue != _unclear(mapping)):
            continue
        here = list(candidates[row]) if row < len(candidates) else []
        on_topic = max(
            float(to_question[row]) if questions[row] else -1.0,
            float(similarity[row, here].max()) if here else -1.0,
        )
        best = int(np.argmax(off_topic[row]))
        if float(off_topic[row, best]) > on_topic + OFF_TOPIC_MARGIN:
            reasons[row] = off_topic_like(prototypes[best])
            matched[row] = off_topic_confidence(float(off_topic[row, best]))
    return matched
