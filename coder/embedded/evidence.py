"""What a proposal shows a reviewer: the evidence sentence of each code (narrowed to the
clause that carries it), and the rationale naming what the answer matched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from coder.embedded.features import clause_spans, split_sentences, theme_prototypes
from coder.embedded.models import TrainedState
from schemas import Codebook, ThemeAssignment

if TYPE_CHECKING:
    from coder.embedded.classifier import LocalClassifier


def evidence_sentence(text: str, vectors: np.ndarray, prototypes: np.ndarray) -> str | None:
    """The sentence of the response most similar to the code's prototypes."""
    if not text.strip():
        return None
    if len(vectors) <= 1:
        return text.strip()
    sentences = split_sentences(text)
    scores = (vectors @ prototypes.T).max(axis=1)
    return sentences[int(scores.argmax())]


def nearest_training(state: TrainedState | None, embeddings: np.ndarray) -> list[str | None]:
    """Per row, the most similar reviewed response's text (None without a model)."""
    if state is None or state.theme_model is None or not state.train_texts:
        return [None] * len(embeddings)
    best = state.theme_model.nearest(embeddings, [None] * len(embeddings), count=1)[:, 0]
    texts = state.train_texts
    return [texts[i] if i < len(texts) else None for i in best]


def rationale(
    prototype_cache: dict[tuple[str, ...], list[str]],
    row: int,
    themes: list[ThemeAssignment],
    codebook: Codebook,
    similarity: np.ndarray,
    best_proto: np.ndarray,
    source: np.ndarray,
    nearest: list[str | None],
) -> str:
    """Why row ``row`` got its first three themes: the prototype each matched, and how."""
    if not themes:
        return "No code matched closely enough."
    parts = []
    for assignment in themes[:3]:
        code = codebook.theme_ids.index(assignment.code)
        theme = codebook.themes[code]
        proto = int(best_proto[row, code])
        key = (theme.id, theme.label, theme.definition, *theme.include, *theme.examples)
        prototypes = prototype_cache.get(key)
        if prototypes is None:
            prototypes = prototype_cache[key] = theme_prototypes(theme)
        what = (
            "definition"
            if proto == 0
            else "label"
            if proto == 1
            else f"example {prototypes[proto][:60]!r}"
            if proto < len(prototypes)
            else "definition"
        )
        how = {
            "model": "learned from reviewed responses",
            "pair": "matched to the code text",
            "stacked": "learned from reviewed responses and the code text",
        }.get(str(source[row, code]), "zero-shot")
        parts.append(
            f"{theme.label}: closest to its {what} (similarity {similarity[row, code]:.2f}; {how})"
        )
    rationale = "; ".join(parts)
    if nearest[row] is not None:
        rationale += f"; similar to reviewed responses: {str(nearest[row])[:80]!r}"
    return rationale + "."


def focus_evidence(
    classifier: LocalClassifier, quoted: Sequence[tuple[ThemeAssignment, np.ndarray]]
) -> None:
    """Narrow each long evidence sentence to the clause that carries its code.

    A reviewer checks a theme faster against "the contract and the spec were almost
    irrelevant" than against a 40-word sentence. A clause replaces the sentence only
    when it matches the code's prototypes at least as well as the whole sentence does
    (both encoded on their own), so a sentence whose meaning is spread over its clauses
    stays whole. Short sentences are never cut (``LONG_SENTENCE_WORDS``).
    """
    work = []
    for assignment, prototypes in quoted:
        sentence = assignment.evidence
        spans = clause_spans(sentence) if sentence else []
        if sentence and spans:
            work.append((assignment, prototypes, sentence, [sentence[b:e] for b, e in spans]))
    if not work:
        return
    # One encoder call for every sentence and clause (the embedding cache keeps repeats free).
    classifier.embed([text for _, _, sentence, clauses in work for text in (sentence, *clauses)])
    for assignment, prototypes, sentence, clauses in work:
        vectors = classifier.embed([sentence, *clauses])
        scores = (vectors @ prototypes.T).max(axis=1)
        best = int(scores[1:].argmax())
        if scores[1 + best] >= scores[0]:
            assignment.evidence = clauses[best]
