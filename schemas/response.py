"""A free-text response to one question, as stored in a project."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Response(BaseModel):
    """One respondent's answer to one question."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Stable id: the source's id column, or a hash of source + row + question.")
    text: str
    question: str | None = Field(default=None, description="Question id (see the codebook).")
    respondent: str | None = Field(default=None, description="Respondent id, when known.")
    attributes: dict[str, Any] = Field(
        default_factory=dict, description="Respondent attributes, e.g. role, organisation, locality."
    )
    tags: list[str] = Field(default_factory=list, description="Hashtags found in the text, e.g. 'NHSSomerset'.")
    source_file: str | None = None
    source_row: int | None = None
