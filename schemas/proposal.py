"""Proposals (a classifier's labels for one response) and human decisions.

Both classifier backends (the embedded default and the LLM through instructor)
produce :class:`Proposal`; the review TUI writes :class:`Labels` inside decisions;
the eval suite compares the two. The LLM backend builds a stricter, codebook-specific
variant of :class:`Proposal` at run time (only valid codes), then converts it to this
general form for storage.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ThemeAssignment(BaseModel):
    """One theme applied to a response, with the text that supports it."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Theme id from the codebook.")
    evidence: str | None = Field(
        default=None, description="A quote from the response that supports the code."
    )
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)


class SuggestedTheme(BaseModel):
    """A theme the response raises that the codebook lacks."""

    model_config = ConfigDict(extra="forbid")

    label: str
    definition: str = ""
    evidence: str | None = None


class Proposal(BaseModel):
    """A classifier's proposed labels for one response."""

    model_config = ConfigDict(extra="forbid")

    response_id: str
    question: str | None = Field(
        default=None, description="Question/hypothesis id the response speaks to."
    )
    stance: str | None = Field(default=None, description="A value of the codebook's stance scale.")
    stance_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    relevant: bool = True
    relevance_reason: str | None = None
    relevance_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    themes: list[ThemeAssignment] = Field(default_factory=list)
    suggested_themes: list[SuggestedTheme] = Field(default_factory=list)
    other_theme_needed: str | None = Field(
        default=None,
        description="A theme the LLM said is needed but was not in its shortlisted prompt.",
    )
    rationale: str = ""
    confidence: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Overall confidence used to order review."
    )
    flags: list[str] = Field(
        default_factory=list,
        description="Warnings for reviewers, e.g. 'possible_prompt_injection'.",
    )

    @property
    def theme_codes(self) -> list[str]:
        return [assignment.code for assignment in self.themes]


DecisionAction = Literal["accept", "correct", "skip", "flag_quote", "unflag_quote", "note", "adjudicate", "bulk_accept", "undo"]

ReasonCode = Literal["wrong_theme", "missed_theme", "wrong_stance", "not_relevant", "wrong_question", "other"]


class Labels(BaseModel):
    """Final labels of a response, as a reviewer decided them."""

    model_config = ConfigDict(extra="forbid")

    question: str | None = None
    stance: str | None = None
    relevant: bool = True
    relevance_reason: str | None = None
    themes: list[str] = Field(default_factory=list)
    quote: bool = Field(default=False, description="Flagged as a quote for the report.")

    @classmethod
    def from_proposal(cls, proposal: Proposal) -> Labels:
        """The labels a reviewer accepts when accepting a proposal as it is."""
        return cls(
            question=proposal.question,
            stance=proposal.stance,
            relevant=proposal.relevant,
            relevance_reason=proposal.relevance_reason,
            themes=list(proposal.theme_codes) if proposal.relevant else [],
        )
