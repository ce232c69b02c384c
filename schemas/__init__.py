"""Pydantic models that are the contract between classifier, store, TUI and eval."""

from schemas.codebook import (
    Codebook,
    Question,
    RelevanceRule,
    StanceScale,
    StanceValue,
    Theme,
    default_stance_scale,
)
from schemas.proposal import Labels, Proposal, SuggestedTheme, ThemeAssignment
from schemas.response import Response

__all__ = [
    "Codebook",
    "Labels",
    "Proposal",
    "Question",
    "RelevanceRule",
    "Response",
    "StanceScale",
    "StanceValue",
    "SuggestedTheme",
    "Theme",
    "ThemeAssignment",
    "default_stance_scale",
]
