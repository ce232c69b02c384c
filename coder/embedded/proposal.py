"""One proposal of the embedded classifier assembled from the batch's decisions: its themes
with evidence, relevance, stance, confidences and rationale."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coder.embedded.evidence import evidence_sentence, rationale
from coder.embedded.models import CodeVectors
from coder.embedded.theme_scoring import ThemeScores
from schemas import Codebook, Proposal, Response, ThemeAssignment


@dataclass
class FieldDecisions:
    """A batch's relevance and stance decisions, one entry per response."""

    relevant: np.ndarray
    relevance_confidence: np.ndarray
    reasons: list[str | None]
    stances: list[str | None]
    stance_confidence: np.ndarray
    #: answers that only give a stance ("Yes", "Strongly resonates"): they raise no theme
    bare: list[bool]
    #: the reviewed response most like each one (named in rationales)
    nearest: list[str | None]


def row_themes(
    row: int,
    text: str,
    sentence_vectors: np.ndarray,
    scored: ThemeScores,
    codes: CodeVectors,
    per_code: list[np.ndarray],
) -> list[ThemeAssignment]:
    """Row ``row``'s assigned codes, most probable first, each with its evidence sentence."""
    chosen = np.flatnonzero(scored.assigned[row])
    chosen = chosen[np.argsort(-scored.probabilities[row, chosen])]
    return [
        ThemeAssignment(
            code=codes.ids[code],
            evidence=evidence_sentence(text, sentence_vectors, per_code[code]),
            confidence=float(np.clip(scored.probabilities[row, code], 0.0, 1.0)),
        )
        for code in chosen
    ]


def build_proposal(
    prototype_cache: dict[tuple[str, ...], list[str]],
    row: int,
    response: Response,
    themes: list[ThemeAssignment],
    codebook: Codebook,
    scored: ThemeScores,
    decided: FieldDecisions,
) -> Proposal:
    """Row ``row``'s proposal: its fields, confidences and rationale."""
    relevant = bool(decided.relevant[row])
    has_stance = bool(codebook.stance_ids)
    stance = decided.stances[row]
    stance_confidence = decided.stance_confidence[row]
    relevance_confidence = decided.relevance_confidence[row]
    here = scored.candidates[row]
    probabilities = scored.probabilities[row, here]
    code_confidence = (
        float(np.min(np.maximum(probabilities, 1 - probabilities)))
        if here and relevant
        else 1.0
    )
    overall = min(
        float(relevance_confidence),
        float(stance_confidence) if has_stance and relevant else 1.0,
        code_confidence,
    )
    if not relevant:
        why = f"Not relevant: {decided.reasons[row] or 'classified as not relevant'}."
    elif decided.bare[row]:
        why = "The answer only gives a stance; it raises no theme."
    else:
        why = rationale(
            prototype_cache,
            row,
            themes,
            codebook,
            scored.similarity,
            scored.best_proto,
            scored.source,
            decided.nearest,
        )
    return Proposal(
        response_id=response.id,
        question=response.question,
        stance=stance if relevant else None,
        stance_confidence=float(np.clip(stance_confidence, 0, 1))
        if has_stance and relevant and stance is not None
        else None,
        relevant=relevant,
        relevance_reason=decided.reasons[row] if not relevant else None,
        relevance_confidence=float(np.clip(relevance_confidence, 0, 1)),
        themes=themes,
        rationale=why,
        confidence=float(np.clip(overall, 0.0, 1.0)),
    )
