"""The codebook: questions, themes, stance scale and relevance rule.

This is the contract every other layer reads. A codebook is written by analysts in
YAML (see ``coder/data/example_codebook.yaml``) or loaded from the gold-set
``codebook.json`` format; both end up as a :class:`Codebook`.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field


class Question(BaseModel):
    """A question or hypothesis that respondents answered."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Short stable id, e.g. 'H1'.")
    short_name: str | None = Field(default=None, description="A few words, e.g. 'Pathways'.")
    text: str = Field(description="The full question or hypothesis text shown to respondents.")
    has_stance: bool = Field(
        default=True,
        description=(
            "False for questions that ask for ideas rather than a view (e.g. 'Are any "
            "hypotheses missing?'): no stance is proposed, asked for or reported for them."
        ),
    )


class Theme(BaseModel):
    """A code that can be applied to a response. Sub-themes name their parent."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Stable code id used in labels, e.g. 'utility_workflow_fit'.")
    label: str = Field(description="Human-readable name.")
    definition: str = Field(description="What the code means: a coder must be able to apply it.")
    include: list[str] = Field(default_factory=list, description="Apply the code when ...")
    exclude: list[str] = Field(default_factory=list, description="Do not apply the code when ...")
    examples: list[str] = Field(default_factory=list, description="Example response texts.")
    parent: str | None = Field(default=None, description="Parent theme id for a sub-theme.")
    questions: list[str] | None = Field(
        default=None,
        description="Question ids this theme applies to; null means cross-cutting (all questions).",
    )
    category: str | None = Field(default=None, description="Optional grouping for display.")

    def applies_to(self, question_id: str | None) -> bool:
        """True if the theme may be used for a response to ``question_id``."""
        return self.questions is None or question_id is None or question_id in self.questions


class StanceValue(BaseModel):
    """One point on the stance scale."""

    model_config = ConfigDict(extra="forbid")

    id: str
    label: str | None = None
    description: str = ""


class StanceScale(BaseModel):
    """How far a response agrees with (resonates with) its question."""

    model_config = ConfigDict(extra="forbid")

    values: list[StanceValue]
    ordered: bool = Field(
        default=True,
        description="True if the values are listed in order (for weighted kappa / ordinal alpha).",
    )
    description: str = ""

    @property
    def ids(self) -> list[str]:
        return [value.id for value in self.values]


def default_stance_scale() -> StanceScale:
    """The default scale: resonates / partly / does_not_resonate / unclear."""
    return StanceScale(
        values=[
            StanceValue(
                id="resonates",
                label="Resonates",
                description="The respondent agrees with the hypothesis or says it matches their experience.",
            ),
            StanceValue(
                id="partly",
                label="Partly resonates",
                description="The respondent agrees with some of it, or agrees with reservations or conditions ('yes, but ...').",
            ),
            StanceValue(
                id="does_not_resonate",
                label="Does not resonate",
                description="The respondent disagrees with the hypothesis or says it does not match their experience.",
            ),
            StanceValue(
                id="unclear",
                label="Unclear",
                description="The response does not say whether the hypothesis resonates.",
            ),
        ],
        # 'unclear' is not a point between the others, so the scale is nominal.
        ordered=False,
        description="Does the hypothesis resonate with the respondent?",
    )


class RelevanceRule(BaseModel):
    """What counts as not relevant (excluded from the analysis)."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(
        default="Not relevant: blank, 'did not answer', 'n/a', or text that does not address the question.",
    )
    not_relevant_examples: list[str] = Field(default_factory=list)


class Codebook(BaseModel):
    """A complete codebook."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    questions: list[Question] = Field(default_factory=list)
    themes: list[Theme] = Field(default_factory=list)
    stance: StanceScale | None = Field(default_factory=default_stance_scale)
    relevance: RelevanceRule | None = Field(default_factory=RelevanceRule)
    sub_themes_imply_parent: bool = Field(
        default=False,
        description=(
            "The parent/sub-theme rule. False (the default): a parent theme is coded only when "
            "the answer speaks of the parent itself, and a sub-theme alone does not imply it. "
            "True: coding a sub-theme also codes its parent (the classifier adds it, the eval "
            "suite scores it, the report counts it)."
        ),
    )

    # --- lookups -----------------------------------------------------------------
    def theme(self, theme_id: str) -> Theme:
        """The theme with this id (KeyError if unknown)."""
        for theme in self.themes:
            if theme.id == theme_id:
                return theme
        raise KeyError(theme_id)

    def question(self, question_id: str) -> Question:
        """The question with this id (KeyError if unknown)."""
        for question in self.questions:
            if question.id == question_id:
                return question
        raise KeyError(question_id)

    @property
    def theme_ids(self) -> list[str]:
        return [theme.id for theme in self.themes]

    @property
    def question_ids(self) -> list[str]:
        return [question.id for question in self.questions]

    @property
    def stance_ids(self) -> list[str]:
        return self.stance.ids if self.stance else []

    def themes_for(self, question_id: str | None) -> list[Theme]:
        """Themes that may be applied to a response to ``question_id``."""
        return [theme for theme in self.themes if theme.applies_to(question_id)]

    def has_stance(self, question_id: str | None) -> bool:
        """False when the codebook has no stance scale or the question declares no stance."""
        if self.stance is None:
            return False
        if question_id is None:
            return True
        try:
            return self.question(question_id).has_stance
        except KeyError:
            return True

    def with_parents(self, codes: list[str]) -> list[str]:
        """``codes`` plus their parents when the codebook's rule says sub-themes imply them.

        Order is kept (a parent follows its first child); unknown codes pass through.
        """
        if not self.sub_themes_imply_parent:
            return list(codes)
        parent_of = {theme.id: theme.parent for theme in self.themes if theme.parent}
        out: list[str] = []
        for code in codes:
            if code not in out:
                out.append(code)
            parent = parent_of.get(code)
            while parent and parent not in out:
                out.append(parent)
                parent = parent_of.get(parent)
        return out

    def question_text(self, question_id: str | None) -> str:
        """The full text of a question, or the id itself when it is not in the codebook."""
        if question_id is None:
            return ""
        try:
            return self.question(question_id).text
        except KeyError:
            return question_id

    def content_hash(self) -> str:
        """A stable hash of the content: a changed codebook gets a new version."""
        data = self.model_dump(mode="json")
        # Fields added after codebooks were first stored are left out while at their
        # default, so an unchanged codebook keeps its version (and its hash).
        if not data.get("sub_themes_imply_parent"):
            data.pop("sub_themes_imply_parent", None)
        for question in data.get("questions", []):
            if question.get("has_stance", True):
                question.pop("has_stance", None)
        canonical = json.dumps(data, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
