"""Predicted labels: the predictions JSONL format, and a backend's proposal in that form."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from eval.gold import jsonl_objects, validated
from schemas import Proposal


class Prediction(BaseModel):
    """One item's predicted labels (the predictions JSONL format)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    labels: list[str] = Field(default_factory=list)
    stance: str | None = None
    relevant: bool | None = None
    confidence: float | None = None
    #: per-code scores or confidences (all codes, or only the predicted ones)
    scores: dict[str, float] = Field(default_factory=dict)
    stance_confidence: float | None = None
    relevance_confidence: float | None = None

    @classmethod
    def from_proposal(cls, proposal: Proposal) -> Prediction:
        """A backend's proposal as a prediction (theme confidences become scores)."""
        return cls(
            id=proposal.response_id,
            labels=list(proposal.theme_codes) if proposal.relevant else [],
            stance=proposal.stance,
            relevant=proposal.relevant,
            confidence=proposal.confidence,
            scores={t.code: t.confidence for t in proposal.themes} if proposal.relevant else {},
            stance_confidence=proposal.stance_confidence,
            relevance_confidence=proposal.relevance_confidence,
        )


def read_predictions(path: Path) -> dict[str, Prediction]:
    """Read a predictions JSONL file (id, labels, stance, relevant, optional scores)."""
    out: dict[str, Prediction] = {}
    for number, data in jsonl_objects(path):
        if "scores" not in data and isinstance(data.get("label_scores"), dict):
            data["scores"] = data["label_scores"]
        prediction = validated(Prediction, data, path, number)
        out[prediction.id] = prediction
    return out
