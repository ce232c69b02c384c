"""What a rapid-insight report holds: the records every renderer (Markdown, HTML, XLSX) reads.

Built by :func:`coder.report.model.build_report`; nothing here reads the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from coder.status import ReviewerStats

LabelSource = Literal["reviewed", "model", "uncoded"]
NO_QUESTION = "(no question)"
NOT_STATED = "not stated"


@dataclass
class ReviewStatus:
    """How many of the counted labels a human has reviewed."""

    reviewed: int = 0
    model_only: int = 0
    uncoded: int = 0

    @property
    def total(self) -> int:
        return self.reviewed + self.model_only + self.uncoded

    def add(self, source: LabelSource) -> None:
        if source == "reviewed":
            self.reviewed += 1
        elif source == "model":
            self.model_only += 1
        else:
            self.uncoded += 1

    def line(self) -> str:
        """One sentence for every report section."""
        return _with_uncoded(
            f"Review status: {self.reviewed} of {self.total} responses human-reviewed, "
            f"{self.model_only} model-only (not yet reviewed)",
            self.uncoded,
        )


@dataclass
class ThemeCount:
    """One node of a question's mind map."""

    theme_id: str
    label: str
    definition: str
    n: int
    share: float  # of the question's relevant responses
    reviewed: int  # how many of the n are human-reviewed
    children: list[ThemeCount] = field(default_factory=list)


@dataclass
class Quote:
    """A response quoted in the report, with its attribution."""

    response_id: str
    text: str
    attribution: str
    themes: list[str]
    stance: str | None
    source: LabelSource
    #: True if a reviewer flagged it as a quote; False if chosen as most representative.
    flagged: bool


@dataclass
class StanceCount:
    stance_id: str
    label: str
    n: int
    share: float


@dataclass
class QuestionReport:
    """Everything shown for one question or hypothesis."""

    question_id: str
    short_name: str | None
    text: str
    responses: int
    relevant: int
    excluded: int
    #: False for a question that asks for ideas (Q10): no stance split is shown.
    has_stance: bool
    stance: list[StanceCount]
    resonance: str  # one sentence: does it resonate? ('' when has_stance is False)
    themes: list[ThemeCount]
    untagged: int  # relevant responses with no theme
    quotes: list[Quote]
    quotes_flagged: bool
    status: ReviewStatus
    #: Distinct respondents who answered (a response without a respondent id is one person).
    people: int = 0

    @property
    def title(self) -> str:
        return f"{self.question_id}: {self.short_name}" if self.short_name else self.question_id

    @property
    def counts_line(self) -> str:
        """'Responses: 40 from 40 people (relevant 36, excluded as not relevant 4).'"""
        return (
            f"{self.responses} from {_people(self.people)} (relevant {self.relevant}, "
            f"excluded as not relevant {self.excluded})."
        )


@dataclass
class BreakdownRow:
    """One value of an attribute (a role, an organisation) with what it contributed."""

    value: str
    responses: int
    people: int


@dataclass
class Breakdown:
    """Responses and people by the values of one respondent attribute."""

    field: str  # the attribute name, e.g. 'organisation'
    kind: str  # 'role', 'organisation' or 'organisation type'
    rows: list[BreakdownRow]

    @property
    def title(self) -> str:
        """The column heading, e.g. 'Organisation type'."""
        return self.kind.capitalize()


@dataclass
class SummaryStats:
    """The seed's 'high level summary statistics'."""

    responses_received: int
    #: Distinct people: respondent ids, plus one per response that has none.
    respondents: int
    relevant: int
    excluded: int
    excluded_reasons: list[tuple[str, int]]
    uncoded: int
    by_tag: list[tuple[str, int]]
    #: By role, organisation type and organisation (those the responses carry).
    breakdowns: list[Breakdown]
    attribution_field: str
    organisations: int | None
    status: ReviewStatus
    #: Responses without a respondent id (each counted as one person).
    without_respondent: int = 0

    @property
    def sentence(self) -> str:
        """'356 responses from 40 people, 17 excluded as not relevant.'"""
        plural = "s" if self.responses_received != 1 else ""
        return _with_uncoded(
            f"{self.responses_received} response{plural} from {_people(self.respondents)}, "
            f"{self.excluded} excluded as not relevant",
            self.uncoded,
        )

    @property
    def people_note(self) -> str | None:
        """The footnote on how people are counted, when some responses lack a respondent id."""
        if not self.without_respondent:
            return None
        return (
            f"{self.without_respondent} response(s) have no respondent id; each is counted "
            "as one person."
        )


@dataclass
class ReportData:
    """The whole report."""

    title: str
    codebook_name: str
    codebook_version: int | None
    generated_at: str | None
    summary: SummaryStats
    questions: list[QuestionReport]
    status: ReviewStatus
    #: The codebook's parent rule, which decides what a parent theme's n counts.
    sub_themes_imply_parent: bool = False
    #: Each reviewer's figures (coder/status.py); the report shows them with two or more.
    team: list[ReviewerStats] = field(default_factory=list)

    @property
    def mind_map_guide(self) -> str:
        """How to read n= in the mind maps, under the codebook's parent rule."""
        if self.sub_themes_imply_parent:
            rule = (
                "a parent theme's n counts each response once when it is coded with the "
                "parent or any of its sub-themes"
            )
        else:
            rule = (
                "a parent theme's n counts only the responses coded with the parent itself; "
                "its sub-themes are counted on their own (this codebook's sub-themes do not "
                "imply their parent)"
            )
        return (
            f"n is the number of relevant responses coded with a theme; {rule}. A response "
            "can be coded with several themes, so the theme counts do not add up to the "
            "number of responses."
        )


def _with_uncoded(text: str, uncoded: int) -> str:
    """A summary sentence, ending with how many responses are not yet coded (if any)."""
    if uncoded:
        text += f", {uncoded} not yet coded"
    return text + "."


def _people(count: int) -> str:
    return f"{count} {'person' if count == 1 else 'people'}"


def walk_themes(nodes: list[ThemeCount], depth: int = 0) -> list[tuple[int, ThemeCount]]:
    """Depth-first (depth, node) pairs, for flat tables."""
    result = []
    for node in nodes:
        result.append((depth, node))
        result.extend(walk_themes(node.children, depth + 1))
    return result
