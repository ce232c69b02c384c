"""The response model the LLM must fill, built at run time from the codebook.

Labels are types: ``code`` is a ``Literal`` of the codebook's theme ids that apply to
the response's question, ``stance`` a ``Literal`` of the stance scale, ``question`` a
``Literal`` of the codebook's questions, so no answer can leave the codebook however
the prompt is manipulated. Validators check meaning, and instructor turns a failed
validation into a re-ask with the error: an evidence quote must occur in the response
(ignoring whitespace, case and quote styles) and each code must apply to the question
the model says the response speaks to.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, model_validator

from schemas import Codebook, Proposal, SuggestedTheme, ThemeAssignment

#: The validators' context when it cannot be passed to pydantic directly. The LLM
#: backend sets this instead of instructor's ``context=``, because instructor also renders
#: every message as a Jinja template with that context, and response text containing
#: ``{{ }}`` or ``{% %}`` would be rewritten (or fail to render) before it was sent.
VALIDATION_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar(
    "coder_llm_validation_context", default=None
)

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "`": "'"})
_ELLIPSIS = re.compile(r"\s*(?:\.\.\.|\u2026|\[\.\.\.\])\s*")


def normalise(text: str) -> str:
    """Lower case, one space between words, straight quotes: the form quotes are compared in."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    return " ".join(text.split())


def quote_in_text(quote: str, text: str) -> bool:
    """True if ``quote`` occurs in ``text``, tolerating whitespace, case, quotes and '...' gaps."""
    haystack = normalise(text)
    parts = [normalise(part).strip(" \"'") for part in _ELLIPSIS.split(quote)]
    parts = [part for part in parts if part]
    if not parts:
        return False
    position = 0
    for part in parts:
        found = haystack.find(part, position)
        if found < 0:
            # Models often drop or add a final full stop: try without edge punctuation.
            stripped = part.strip(" .,;:!?")
            found = haystack.find(stripped, position) if stripped else -1
            if found < 0:
                return False
            part = stripped
        position = found + len(part)
    return True


class _LLMSuggestedTheme(BaseModel):
    """A theme the response raises that no code covers."""

    label: str = Field(description="A few words naming the new theme.")
    definition: str = Field(default="", description="One sentence: what the theme means.")
    evidence: str | None = Field(default=None, description="A quote from the response.")


class _ItemBase(BaseModel):
    """Shared validators of the run-time item models."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="after")
    def _check_meaning(self, info: ValidationInfo) -> _ItemBase:
        context: dict[str, Any] = info.context or VALIDATION_CONTEXT.get() or {}
        codebook: Codebook | None = context.get("codebook")
        texts: dict[str, str] = context.get("texts", {})
        response_id = getattr(self, "response_id", None) or context.get("response_id")
        text = texts.get(str(response_id)) if response_id is not None else None
        question = getattr(self, "question", None) or context.get("question")
        problems = []
        for theme in getattr(self, "themes", []):
            if codebook is not None:
                try:
                    applies = codebook.theme(theme.code).applies_to(question)
                except KeyError:
                    applies = False
                if not applies:
                    problems.append(
                        f"code {theme.code!r} does not apply to question {question!r}; "
                        "use only codes listed for that question"
                    )
            if text is not None and not quote_in_text(theme.evidence, text):
                problems.append(
                    f"evidence {theme.evidence!r} for code {theme.code!r} is not a quote from "
                    f"response {response_id}; copy the words exactly from the response"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _literal(values: list[str]) -> Any:
    return Literal[tuple(values)]  # type: ignore[valid-type]


def _safe_name(text: str | None) -> str:
    return re.sub(r"\W+", "_", text or "any").strip("_") or "any"


def _offered_codes(
    codebook: Codebook, question_id: str | None, theme_ids: Sequence[str] | None
) -> tuple[list[str], bool]:
    """The codes the model may answer with, and whether a shortlist left some out."""
    codes = [theme.id for theme in codebook.themes_for(question_id)]
    if theme_ids is None:
        return codes, False
    wanted = set(theme_ids)
    shortlisted = len(wanted & set(codes)) < len(codes)
    return [code for code in codes if code in wanted], shortlisted


def _judgement_fields(codebook: Codebook, question_id: str | None) -> dict[str, Any]:
    """The question, relevance and stance fields (question and stance when the codebook has them)."""
    fields: dict[str, Any] = {}
    if codebook.questions:
        default_question = question_id if question_id in codebook.question_ids else None
        fields["question"] = (
            _literal(codebook.question_ids) | None,
            Field(
                default=default_question,
                description="Id of the question the response speaks to (usually its own).",
            ),
        )
    fields["relevant"] = (
        bool,
        Field(description="False if the response is not relevant (see the relevance rule)."),
    )
    fields["relevance_reason"] = (
        str | None,
        Field(default=None, description="Why the response is not relevant, if it is not."),
    )
    if codebook.stance_ids:
        fields["stance"] = (
            _literal(codebook.stance_ids) | None,
            Field(default=None, description="The respondent's stance on the question."),
        )
    return fields


def _themes_field(codes: list[str], suffix: str) -> Any:
    """The ``themes`` field: a list of (code from ``codes``, evidence quote, confidence)."""
    theme_model = create_model(
        f"Theme_{suffix}",
        __doc__="One theme applied to the response.",
        code=(_literal(codes), Field(description="A theme id from the codebook.")),
        evidence=(
            str,
            Field(description="A short quote copied exactly from the response."),
        ),
        confidence=(float, Field(default=0.8, ge=0.0, le=1.0)),
    )
    return (
        list[theme_model],  # type: ignore[valid-type]
        Field(default_factory=list, description="Every theme the response expresses."),
    )


def _closing_fields(shortlisted: bool) -> dict[str, Any]:
    """The escape for an unlisted theme (with a shortlist), new themes, rationale, confidence."""
    fields: dict[str, Any] = {}
    if shortlisted:
        fields["other_theme_needed"] = (
            str | None,
            Field(
                default=None,
                description="A codebook theme not listed that the response clearly "
                "expresses (its name); empty if the listed themes suffice.",
            ),
        )
    fields["suggested_themes"] = (
        list[_LLMSuggestedTheme],
        Field(default_factory=list, description="New themes not in the codebook (rarely)."),
    )
    fields["rationale"] = (str, Field(default="", description="One or two sentences."))
    fields["confidence"] = (
        float,
        Field(default=0.7, ge=0.0, le=1.0, description="Overall confidence in this coding."),
    )
    return fields


def build_item_model(
    codebook: Codebook,
    question_id: str | None,
    response_ids: list[str] | None = None,
    theme_ids: Sequence[str] | None = None,
) -> type[BaseModel]:
    """The model of one coded response to ``question_id``.

    With ``response_ids`` (batched requests) the item carries a ``response_id`` that
    must be one of them. With ``theme_ids`` (a shortlist) ``code`` is one of those, and an
    ``other_theme_needed`` field lets the model say a theme it was not shown is needed.
    """
    suffix = _safe_name(question_id)
    codes, shortlisted = _offered_codes(codebook, question_id, theme_ids)
    # The field order is the order the model writes its answer in: judgement, then themes.
    fields: dict[str, Any] = {}
    if response_ids is not None:
        fields["response_id"] = (
            _literal(response_ids),
            Field(description="The id of the response this item codes."),
        )
    fields.update(_judgement_fields(codebook, question_id))
    if codes:
        fields["themes"] = _themes_field(codes, suffix)
    fields.update(_closing_fields(shortlisted))
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"CodedResponse_{suffix}",
        __base__=_ItemBase,
        __doc__="The coding of one free-text response against the codebook.",
        **fields,
    )
    return model


def build_batch_model(
    codebook: Codebook,
    question_id: str | None,
    response_ids: list[str],
    theme_ids: Sequence[str] | None = None,
) -> type[BaseModel]:
    """The model of several coded responses to one question in one request."""
    item = build_item_model(codebook, question_id, response_ids, theme_ids)
    model: type[BaseModel] = create_model(
        f"CodedResponses_{_safe_name(question_id)}",
        __doc__="The coding of each response given, one item per response id.",
        items=(list[item], Field(description="One item per response.")),  # type: ignore[valid-type]
    )
    return model


def to_proposal(item: BaseModel, response_id: str, response_question: str | None) -> Proposal:
    """Convert a validated run-time item into the stored :class:`schemas.Proposal`."""
    data = item.model_dump()
    relevant = bool(data.get("relevant", True))
    themes = []
    seen: set[str] = set()
    for theme in data.get("themes", []) if relevant else []:
        if theme["code"] in seen:  # a code applied twice keeps its first evidence
            continue
        seen.add(theme["code"])
        themes.append(
            ThemeAssignment(
                code=theme["code"], evidence=theme["evidence"], confidence=theme["confidence"]
            )
        )
    return Proposal(
        response_id=response_id,
        question=data.get("question") or response_question,
        stance=data.get("stance"),
        relevant=relevant,
        relevance_reason=data.get("relevance_reason"),
        themes=themes,
        suggested_themes=[
            SuggestedTheme(
                label=s["label"], definition=s.get("definition") or "", evidence=s.get("evidence")
            )
            for s in data.get("suggested_themes", [])
        ],
        rationale=data.get("rationale") or "",
        confidence=float(data.get("confidence", 0.5)),
        other_theme_needed=(data.get("other_theme_needed") or "").strip() or None,
    )
