"""Theme scores of a batch in the embedded classifier: each field mode's view (zero-shot,
augmented, hybrid, trained kernel + pair model, stacked) turned into a probability and a
decision per (response, code)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from coder.embedded.features import content_words
from coder.embedded.models import (
    CodeVectors,
    KernelThemeModel,
    TrainedState,
    pair_features,
    prototype_similarity,
    sigmoid,
)
from coder.embedded.theme_pairs import state_rerank
from schemas import Codebook

if TYPE_CHECKING:
    from coder.embedded.classifier import LocalClassifier

#: Zero-shot: besides the best code, a code is given when its score is within this many
#: standard deviations (of the response's scores over its candidate codes) of the best.
#: Relative to the response's own spread, so it does not depend on a codebook's scale.
ZERO_SHOT_SPREAD = 0.2


@dataclass
class ThemeScores:
    """Per (response, code) scores of one batch."""

    candidates: list[list[int]]
    similarity: np.ndarray
    best_proto: np.ndarray
    probabilities: np.ndarray
    assigned: np.ndarray
    source: np.ndarray
    #: raw kernel ridge scores, columns in the theme model's label order (None: no model)
    kernel_scores: np.ndarray | None = None


@dataclass
class _Batch:
    """The responses being scored and the codebook's vectors."""

    texts: Sequence[str]
    questions: Sequence[str | None]
    embeddings: np.ndarray
    codebook: Codebook
    codes: CodeVectors
    per_code: list[np.ndarray]


@dataclass
class _Decisions:
    """The batch's decisions as each view fills in the codes it covers."""

    probabilities: np.ndarray
    assigned: np.ndarray
    source: np.ndarray
    covered: np.ndarray

    @classmethod
    def empty(cls, count: int, n_codes: int) -> _Decisions:
        return cls(
            np.zeros((count, n_codes)),
            np.zeros((count, n_codes), dtype=bool),
            np.full((count, n_codes), "", dtype=object),
            np.zeros(n_codes, dtype=bool),
        )


def kernel_margins(
    model: KernelThemeModel | None, raw: np.ndarray | None, codebook: Codebook
) -> tuple[np.ndarray, np.ndarray]:
    """Per code, the kernel score minus its threshold (0 where the model has no column),
    and which codes it covers."""
    codes = codebook.theme_ids
    covered = np.zeros(len(codes), dtype=bool)
    margins = np.zeros((0 if raw is None else len(raw), len(codes)))
    if model is None or raw is None or model.thresholds is None:
        return margins, covered
    position = {code: column for column, code in enumerate(codes)}
    for column, label in enumerate(model.labels):
        if label in position:
            margins[:, position[label]] = raw[:, column] - model.thresholds[column]
            covered[position[label]] = True
    return margins, covered


def rare_code_prior(
    state: TrainedState | None,
    probabilities: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    codes: CodeVectors,
) -> np.ndarray:
    """Pair probabilities of rare codes, shifted by how rarely reviewers used them.

    The pair model's odds are those of an average code. A code reviewers applied only
    once or twice in hundreds of answers is far rarer, so its odds are scaled by the
    ratio of its smoothed rate to the pair model's base rate (never raised). Codes with
    no positive at all are left alone: they may be new, with no chance to be used yet.
    On NHS dev (5-fold CV) this removed 134 proposals of which 1 was right.
    """
    rare = getattr(state, "rare_codes", None) if state is not None else None
    base_rate = getattr(state.pair_model, "base_rate", 0.0) if state else 0.0
    if not rare or not base_rate or not len(probabilities):
        return probabilities
    shift = np.zeros(len(probabilities))
    for position, (_, code) in enumerate(pairs):
        found = rare.get(codes.ids[code])
        if found is not None:
            positives, seen = found
            rate = (positives + 0.5) / (seen + 1.0)
            shift[position] = min(0.0, float(np.log(rate / base_rate)))
    clipped = np.clip(probabilities, 1e-6, 1 - 1e-6)
    return sigmoid(np.log(clipped / (1 - clipped)) + shift)


def score_themes(
    classifier: LocalClassifier,
    texts: Sequence[str],
    questions: Sequence[str | None],
    embeddings: np.ndarray,
    codebook: Codebook,
    codes: CodeVectors,
    per_code: list[np.ndarray],
    sentence_vectors: list[np.ndarray] | None = None,
) -> ThemeScores:
    """Probability and decision for every (response, code); codes not applying are 0."""
    state = classifier.state
    count = len(texts)
    candidates = [
        [position for position, t in enumerate(codebook.themes) if t.applies_to(q)]
        for q in questions
    ]
    applicable = np.zeros((count, len(codes.ids)), dtype=bool)
    for row, here in enumerate(candidates):
        applicable[row, here] = True
    mode = classifier._mode("themes")
    batch = _Batch(texts, questions, embeddings, codebook, codes, per_code)
    zero_shot_scores, similarity, best_proto = _similarities(
        classifier, mode, batch, sentence_vectors
    )
    decisions = _Decisions.empty(count, len(codes.ids))
    kernel_raw: np.ndarray | None = None
    if state is not None and state.theme_model is not None:
        kernel_raw = state.theme_model.scores(texts, embeddings, questions)
        # Hybrid and trained modes use it; zero-shot mode keeps it for stance only.
        if mode in ("trained", "hybrid"):
            _kernel_decisions(state.theme_model, kernel_raw, codes, decisions)
    if mode == "stacked" and state is not None and state.stack_model is not None:
        assert zero_shot_scores is not None
        _stacked_decisions(
            state, zero_shot_scores, applicable, embeddings, questions, kernel_raw, codebook,
            decisions,
        )
    uncovered = [[code for code in here if not decisions.covered[code]] for here in candidates]
    if state is not None and state.pair_model is not None and mode == "trained" and any(uncovered):
        _pair_decisions(classifier, texts, embeddings, candidates, codes, uncovered, decisions)
    elif any(uncovered) and zero_shot_scores is not None:
        _zero_shot_decisions(zero_shot_scores, applicable, decisions)
    decisions.assigned &= applicable
    # With --theme-pairs, the cross-encoder re-ranks each answer's best codes (theme_pairs.py).
    probabilities, assigned = state_rerank(
        classifier, texts, codebook, decisions.probabilities, decisions.assigned, candidates
    )
    return ThemeScores(
        candidates,
        similarity,
        best_proto,
        probabilities,
        assigned,
        decisions.source,
        kernel_raw,
    )


def _similarities(
    classifier: LocalClassifier, mode: str, batch: _Batch, sentence_vectors: list[np.ndarray] | None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Zero-shot scores (None when the mode does not use them), and the similarity of each
    response to each code's best prototype (for rationales and relevance) with its index."""
    state = classifier.state
    texts, questions, embeddings = batch.texts, batch.questions, batch.embeddings
    codebook, codes, per_code = batch.codebook, batch.codes, batch.per_code
    if mode == "stacked":
        if sentence_vectors is None:
            _, sentence_vectors = classifier.embed_sentences(texts)
        # As _zero_shot_matrix, keeping the sentence-level similarity for relevance.
        zero_shot_scores, similarity, best_proto = classifier.zero_shot_similarity(
            embeddings, per_code, codes, codebook, sentence_vectors
        )
        zero_shot_scores = zero_shot_scores + classifier._prior_rows(texts, questions, codebook)
        return zero_shot_scores, similarity, best_proto
    if state is None or state.pair_model is None or mode != "trained":
        # Zero-shot: a response that raises several topics matches each one best in
        # the sentence that speaks of it.
        if sentence_vectors is None:
            sentence_vectors = classifier.separate_sentence_vectors(texts)
        matched = per_code
        if mode in ("augmented", "hybrid") and state is not None:
            # Reviewed answers join the codebook's examples of the codes they carry.
            extra = getattr(state, "code_examples", None) or {}
            matched = [
                np.vstack([vectors, classifier.embed(extra[code])]) if extra.get(code) else vectors
                for code, vectors in zip(codes.ids, per_code, strict=True)
            ]
        zero_shot_scores, similarity, best_proto = classifier.zero_shot_similarity(
            embeddings, matched, codes, codebook, sentence_vectors
        )
        zero_shot_scores = zero_shot_scores + classifier._prior_rows(texts, questions, codebook)
        return zero_shot_scores, similarity, best_proto
    similarity, best_proto = prototype_similarity(embeddings, per_code, codes.n_head)
    return None, similarity, best_proto


def _kernel_decisions(
    model: KernelThemeModel, raw: np.ndarray, codes: CodeVectors, decisions: _Decisions
) -> None:
    """The kernel model decides the codes it has a column for."""
    columns = [
        (position, codes.ids.index(code))
        for position, code in enumerate(model.labels)
        if code in codes.ids
    ]
    if not columns:
        return
    calibrated = model.probabilities(raw)
    assert model.thresholds is not None
    for model_column, code_column in columns:
        decisions.probabilities[:, code_column] = calibrated[:, model_column]
        decisions.assigned[:, code_column] = raw[:, model_column] > model.thresholds[model_column]
        decisions.source[:, code_column] = "model"
        decisions.covered[code_column] = True


def _stacked_decisions(
    state: TrainedState,
    zero_shot_scores: np.ndarray,
    applicable: np.ndarray,
    embeddings: np.ndarray,
    questions: Sequence[str | None],
    kernel_raw: np.ndarray | None,
    codebook: Codebook,
    decisions: _Decisions,
) -> None:
    """The stack model decides every code (see :class:`StackModel`)."""
    stack = state.stack_model
    assert stack is not None
    margins, kernel_covers = kernel_margins(state.theme_model, kernel_raw, codebook)
    if kernel_raw is None:
        margins = np.zeros(applicable.shape)
    features = stack.features(
        zero_shot_scores, applicable, embeddings, questions, margins, kernel_covers
    )
    probabilities = stack.probabilities(features, applicable)
    assigned = probabilities >= stack.code_thresholds()[None, :]
    # As zero-shot does, an answer gets at least its best code (bare stances and
    # irrelevant answers lose their themes later).
    empty = applicable.any(axis=1) & ~assigned.any(axis=1)
    best = np.where(applicable, probabilities, -1.0).argmax(axis=1)
    assigned[np.flatnonzero(empty), best[empty]] = True
    decisions.probabilities = probabilities
    decisions.assigned = assigned
    decisions.source = np.where(applicable, "stacked", decisions.source)
    decisions.covered[:] = True


def _pair_decisions(
    classifier: LocalClassifier,
    texts: Sequence[str],
    embeddings: np.ndarray,
    candidates: list[list[int]],
    codes: CodeVectors,
    uncovered: list[list[int]],
    decisions: _Decisions,
) -> None:
    """The pair model decides the codes no kernel column covers."""
    pair_model = classifier.state.pair_model if classifier.state is not None else None
    assert pair_model is not None
    words = [content_words(text) for text in texts]
    # Features against every candidate, as in training; only uncovered pairs kept.
    features, pairs = pair_features(embeddings, words, candidates, codes, keep=uncovered)
    pair_probabilities = pair_model.probabilities(features)
    pair_probabilities = classifier._rare_code_prior(pair_probabilities, pairs, codes)
    for (row, code), probability in zip(pairs, pair_probabilities, strict=True):
        decisions.probabilities[row, code] = probability
        decisions.assigned[row, code] = probability >= pair_model.threshold
        decisions.source[row, code] = "pair"


def _zero_shot_decisions(
    zero_shot_scores: np.ndarray, applicable: np.ndarray, decisions: _Decisions
) -> None:
    """Zero-shot: the best code, and any other within ZERO_SHOT_SPREAD standard deviations
    of it (the spread of this response's own candidate scores).

    Decided over every applicable code, then used only where no trained model covers the
    code (hybrid): the best code may be one the kernel model decides.
    """
    open_codes = applicable & ~decisions.covered[None, :]
    masked = np.where(applicable, zero_shot_scores, np.nan)
    has_any: np.ndarray = np.asarray(applicable.any(axis=1), dtype=bool)
    top = np.where(has_any, np.nanmax(np.where(has_any[:, None], masked, 0.0), axis=1), 0.0)
    spread = np.where(has_any, np.nanstd(np.where(has_any[:, None], masked, 0.0), axis=1), 0.0)
    cut = (top - ZERO_SHOT_SPREAD * spread)[:, None]
    zero_shot = open_codes & (np.nan_to_num(masked, nan=-np.inf) >= cut)
    decisions.assigned |= zero_shot
    # One scale for every response, so that scores rank answers against each other
    # (key-point matching ranks all of a motion's pairs): scaled by each response's
    # own spread they were not comparable (ArgKP zero-shot mAP strict 0.545 -> 0.733).
    zs_prob = sigmoid((np.nan_to_num(masked, nan=-1e3) - cut) * 25.0 + 0.5)
    decisions.probabilities = np.where(open_codes, zs_prob, decisions.probabilities)
    decisions.source = np.where(open_codes, "zero-shot", decisions.source)
