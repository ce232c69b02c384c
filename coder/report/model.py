"""The data of a rapid-insight report, computed from a project store.

Everything the Markdown, HTML and XLSX renderers show is computed here, once, so the three
formats always agree. A response counts with its reviewed labels (``Store.final_labels()``)
and, where nobody has reviewed it yet, with the model's proposal
(``Store.current_proposals()``); every count says how many of its labels are which, because a
reader must know how much of a finding a human has checked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from coder.store import Store, StoredDecision, StoredProposal
from schemas import Codebook, Labels, Response, Theme

LabelSource = Literal["reviewed", "model", "uncoded"]

#: Attribute names tried, in order, for a quote's attribution when none is configured.
DEFAULT_ATTRIBUTION_FIELDS = ("role", "organisation_type", "organisation", "stakeholder")
NO_QUESTION = "(no question)"
NOT_STATED = "not stated"


@dataclass
class CodedResponse:
    """A response with the labels that count for it, and where they came from."""

    response: Response
    labels: Labels | None
    source: LabelSource
    proposal: StoredProposal | None = None
    decision: StoredDecision | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def question(self) -> str:
        """The question the response is counted under (reviewed > proposed > imported)."""
        if self.labels is not None and self.labels.question:
            return self.labels.question
        return self.response.question or NO_QUESTION

    @property
    def confidence(self) -> float | None:
        return self.proposal.confidence if self.proposal is not None else None

    def evidence(self, code: str) -> str | None:
        """The model's evidence quote for ``code``, if its proposal gave one."""
        if self.proposal is None or self.proposal.proposal is None:
            return None
        for assignment in self.proposal.proposal.themes:
            if assignment.code == code and assignment.evidence:
                return assignment.evidence
        return None


def collect_coded(store: Store) -> list[CodedResponse]:
    """Every response in import order with its labels in force (reviewed, else proposed)."""
    finals = store.final_labels()
    reviewed = store.reviewed_response_ids()
    proposals = store.current_proposals()
    notes: dict[str, list[str]] = {}
    for noted in store.decisions():
        if noted.note:
            notes.setdefault(noted.response_id, []).append(f"{noted.reviewer}: {noted.note}")
    coded = []
    for response in store.responses():
        decision = finals.get(response.id)
        proposal = proposals.get(response.id)
        if decision is not None and decision.labels is not None:
            labels: Labels | None = decision.labels
            # A quote flagged on an unreviewed response carries the model's labels.
            source: LabelSource = "reviewed" if response.id in reviewed else "model"
        elif proposal is not None and proposal.proposal is not None:
            labels = Labels.from_proposal(proposal.proposal)
            source = "model"
        else:
            labels, source = None, "uncoded"
        coded.append(
            CodedResponse(
                response=response,
                labels=labels,
                source=source,
                proposal=proposal,
                decision=decision,
                notes=notes.get(response.id, []),
            )
        )
    return coded


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
        text = (
            f"Review status: {self.reviewed} of {self.total} responses human-reviewed, "
            f"{self.model_only} model-only (not yet reviewed)"
        )
        if self.uncoded:
            text += f", {self.uncoded} not yet coded"
        return text + "."


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
    stance: list[StanceCount]
    resonance: str  # one sentence: does it resonate?
    themes: list[ThemeCount]
    untagged: int  # relevant responses with no theme
    quotes: list[Quote]
    quotes_flagged: bool
    status: ReviewStatus

    @property
    def title(self) -> str:
        return f"{self.question_id}: {self.short_name}" if self.short_name else self.question_id


@dataclass
class SummaryStats:
    """The seed's 'high level summary statistics'."""

    responses_received: int
    respondents: int
    relevant: int
    excluded: int
    excluded_reasons: list[tuple[str, int]]
    uncoded: int
    by_tag: list[tuple[str, int]]
    by_attribution: list[tuple[str, int]]
    attribution_field: str
    organisations: int | None
    status: ReviewStatus


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


def attribution_for(response: Response, attribution_field: str | None) -> str:
    """Who said it, e.g. 'Representative from a health innovation network' or 'Innovator'."""
    fields: Sequence[str] = (
        (attribution_field,) if attribution_field else DEFAULT_ATTRIBUTION_FIELDS
    )
    for name in fields:
        value = response.attributes.get(name)
        if value not in (None, ""):
            return str(value).strip()
    return "Respondent"


def _attribution_field_used(responses: Sequence[Response], configured: str | None) -> str:
    if configured:
        return configured
    for name in DEFAULT_ATTRIBUTION_FIELDS:
        if any(response.attributes.get(name) not in (None, "") for response in responses):
            return name
    return DEFAULT_ATTRIBUTION_FIELDS[0]


def _theme_lookup(codebook: Codebook, code: str) -> Theme:
    try:
        return codebook.theme(code)
    except KeyError:
        # A code no longer (or never) in the codebook still counts, under its id.
        return Theme(id=code, label=code, definition="(not in the codebook)")


def _theme_tree(
    codebook: Codebook, members: list[CodedResponse], relevant: int
) -> list[ThemeCount]:
    """Themes with n > 0; a parent counts every response with it or any of its sub-themes."""
    direct: dict[str, set[str]] = {}
    reviewed_ids = {m.response.id for m in members if m.source == "reviewed"}
    for member in members:
        assert member.labels is not None
        for code in dict.fromkeys(member.labels.themes):
            direct.setdefault(code, set()).add(member.response.id)
    themes = {code: _theme_lookup(codebook, code) for code in direct}
    # Parents of used sub-themes are shown even when never applied directly.
    for code in list(themes):
        parent = themes[code].parent
        seen = set()
        while parent and parent not in themes and parent not in seen:
            seen.add(parent)
            themes[parent] = _theme_lookup(codebook, parent)
            parent = themes[parent].parent
    children: dict[str | None, list[str]] = {}
    for code, theme in themes.items():
        parent = theme.parent if theme.parent in themes else None
        children.setdefault(parent, []).append(code)
    order = {code: index for index, code in enumerate(codebook.theme_ids)}

    def ids_under(code: str) -> set[str]:
        result = set(direct.get(code, set()))
        for child in children.get(code, []):
            result |= ids_under(child)
        return result

    def build(code: str) -> ThemeCount:
        ids = ids_under(code)
        theme = themes[code]
        nodes = [build(child) for child in children.get(code, [])]
        return ThemeCount(
            theme_id=code,
            label=theme.label,
            definition=theme.definition,
            n=len(ids),
            share=len(ids) / relevant if relevant else 0.0,
            reviewed=len(ids & reviewed_ids),
            children=_sorted_nodes(nodes, order),
        )

    return _sorted_nodes([build(code) for code in children.get(None, [])], order)


def _sorted_nodes(nodes: list[ThemeCount], order: dict[str, int]) -> list[ThemeCount]:
    # Largest first, as in the seed's mind maps; codebook order breaks ties.
    return sorted(
        nodes, key=lambda node: (-node.n, order.get(node.theme_id, 1 << 30), node.theme_id)
    )


def _stance_counts(codebook: Codebook, members: list[CodedResponse]) -> list[StanceCount]:
    counts = Counter(
        (m.labels.stance if m.labels is not None and m.labels.stance else NOT_STATED)
        for m in members
    )
    total = len(members)
    result = []
    labels = {
        value.id: value.label or value.id
        for value in (codebook.stance.values if codebook.stance else [])
    }
    for stance_id in [*labels, *sorted(k for k in counts if k not in labels)]:
        n = counts.get(stance_id, 0)
        if n == 0 and stance_id not in labels:
            continue
        result.append(
            StanceCount(
                stance_id=stance_id,
                label=labels.get(stance_id, stance_id),
                n=n,
                share=n / total if total else 0.0,
            )
        )
    return result


def _resonance_sentence(stance: list[StanceCount], relevant: int) -> str:
    if relevant == 0:
        return "No relevant responses."
    stated = [s for s in stance if s.stance_id not in (NOT_STATED, "unclear") and s.n > 0]
    if not stated:
        return "No response said whether it resonates."
    top = max(stated, key=lambda s: s.n)
    parts = ", ".join(f"{s.label.lower()} {s.n}" for s in stance if s.n > 0)
    return f"Most often: {top.label} ({top.n} of {relevant}; {parts})."


def _quotes(
    members: list[CodedResponse],
    codebook: Codebook,
    attribution_field: str | None,
    max_quotes: int,
) -> tuple[list[Quote], bool]:
    # A reviewer flag counts even on a response whose labels are not reviewed yet.
    flagged = [m for m in members if m.decision is not None and m.labels and m.labels.quote]
    chosen_flagged = bool(flagged)
    if flagged:
        chosen = flagged
    else:
        # No reviewer picked quotes yet: the most confident coded responses stand in.
        candidates = [m for m in members if m.labels and m.labels.themes]
        chosen = sorted(
            candidates,
            key=lambda m: (m.source != "reviewed", -(m.confidence or 0.0), -len(m.response.text)),
        )
    quotes = []
    for member in chosen[:max_quotes]:
        assert member.labels is not None
        quotes.append(
            Quote(
                response_id=member.response.id,
                text=member.response.text.strip(),
                attribution=attribution_for(member.response, attribution_field),
                themes=[_theme_lookup(codebook, code).label for code in member.labels.themes],
                stance=member.labels.stance,
                source=member.source,
                flagged=chosen_flagged,
            )
        )
    return quotes, chosen_flagged


def _question_order(codebook: Codebook, coded: list[CodedResponse]) -> list[str]:
    present = list(dict.fromkeys(c.question for c in coded))
    ordered = [q for q in codebook.question_ids if q in present]
    return ordered + [q for q in present if q not in ordered]


def build_report(
    store: Store,
    *,
    codebook: Codebook | None = None,
    codebook_version: int | None = None,
    attribution_field: str | None = None,
    max_quotes: int = 3,
    title: str | None = None,
    generated_at: str | None = None,
) -> ReportData:
    """Compute the report from the store (latest codebook unless one is given).

    ``generated_at`` is printed as given; leave it None for reproducible output.
    """
    if codebook is None:
        codebook_version, codebook = store.codebook(codebook_version)
    coded = collect_coded(store)
    responses = [c.response for c in coded]
    field_used = _attribution_field_used(responses, attribution_field)

    overall = ReviewStatus()
    for member in coded:
        overall.add(member.source)

    questions = []
    for question_id in _question_order(codebook, coded):
        members = [c for c in coded if c.question == question_id]
        status = ReviewStatus()
        for member in members:
            status.add(member.source)
        labelled = [m for m in members if m.labels is not None]
        relevant = [m for m in labelled if m.labels is not None and m.labels.relevant]
        try:
            question = codebook.question(question_id)
            short_name, text = question.short_name, question.text
        except KeyError:
            short_name, text = None, "" if question_id == NO_QUESTION else question_id
        stance = _stance_counts(codebook, relevant)
        quotes, quotes_flagged = _quotes(relevant, codebook, attribution_field, max_quotes)
        questions.append(
            QuestionReport(
                question_id=question_id,
                short_name=short_name,
                text=text,
                responses=len(members),
                relevant=len(relevant),
                excluded=len(labelled) - len(relevant),
                stance=stance,
                resonance=_resonance_sentence(stance, len(relevant)),
                themes=_theme_tree(codebook, relevant, len(relevant)),
                untagged=sum(1 for m in relevant if m.labels is not None and not m.labels.themes),
                quotes=quotes,
                quotes_flagged=quotes_flagged,
                status=status,
            )
        )

    labelled_all = [c for c in coded if c.labels is not None]
    excluded = [c for c in labelled_all if c.labels is not None and not c.labels.relevant]
    reasons = Counter(
        (c.labels.relevance_reason or "no reason given") if c.labels is not None else ""
        for c in excluded
    )
    tags = Counter(tag for c in coded for tag in dict.fromkeys(c.response.tags))
    roles = Counter(str(c.response.attributes.get(field_used) or "not stated") for c in coded)
    organisations = {
        str(c.response.attributes["organisation"])
        for c in coded
        if c.response.attributes.get("organisation") not in (None, "")
    }
    respondents = {c.response.respondent for c in coded if c.response.respondent}
    summary = SummaryStats(
        responses_received=len(coded),
        respondents=len(respondents),
        relevant=len(labelled_all) - len(excluded),
        excluded=len(excluded),
        excluded_reasons=_most_common(reasons),
        uncoded=overall.uncoded,
        by_tag=_most_common(tags),
        by_attribution=_most_common(roles),
        attribution_field=field_used,
        organisations=len(organisations) if organisations else None,
        status=overall,
    )
    return ReportData(
        title=title or codebook.name,
        codebook_name=codebook.name,
        codebook_version=codebook_version,
        generated_at=generated_at,
        summary=summary,
        questions=questions,
        status=overall,
    )


def _most_common(counter: Counter[str]) -> list[tuple[str, int]]:
    # Ties broken by name so output is stable.
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def walk_themes(nodes: list[ThemeCount], depth: int = 0) -> list[tuple[int, ThemeCount]]:
    """Depth-first (depth, node) pairs, for flat tables."""
    result = []
    for node in nodes:
        result.append((depth, node))
        result.extend(walk_themes(node.children, depth + 1))
    return result
