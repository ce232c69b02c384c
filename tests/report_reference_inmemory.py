"""The report model as it was before it streamed: every response held in memory.

Kept only as the reference that ``tests/test_report_streamed.py`` compares the streamed
:func:`coder.report.model.build_report` with (the same ReportData, the same Markdown). Not
used by coder itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from coder.errors import CoderError
from coder.relevance_reasons import reason_kind
from coder.report.quotes import QuoteKeys, quotable, select_quotes
from coder.status import ReviewerStats, reviewer_stats
from coder.store import Store, StoredDecision, StoredProposal
from schemas import Codebook, Labels, Response, Theme

LabelSource = Literal["reviewed", "model", "uncoded"]

#: Attribute names read as the respondent's role, first present wins. The Forms importer
#: stores 'role'; older projects and other surveys use the others.
ROLE_FIELDS = ("role", "job_role", "job_title", "stakeholder", "stakeholder_type")
#: Attribute names read as the respondent's organisation.
ORGANISATION_FIELDS = ("organisation", "organization", "org")
#: Attribute names read as the kind of organisation (e.g. 'NHS trust', 'SME').
ORGANISATION_TYPE_FIELDS = ("organisation_type", "organization_type")
#: Every attribute name recognised for attribution, in the order tried.
DEFAULT_ATTRIBUTION_FIELDS = (*ROLE_FIELDS, *ORGANISATION_TYPE_FIELDS, *ORGANISATION_FIELDS)
NO_QUESTION = "(no question)"
NOT_STATED = "not stated"
ANONYMOUS_RESPONDENT = "Respondent"


class UnknownAttributionField(CoderError):
    """``--attribution-field`` names an attribute no response has."""


@dataclass
class CodedResponse:
    """A response with the labels that count for it, and where they came from."""

    response: Response
    labels: Labels | None
    source: LabelSource
    proposal: StoredProposal | None = None
    decision: StoredDecision | None = None
    notes: list[str] = field(default_factory=list)
    #: The proposal's confidence, kept when the proposal itself is dropped (:func:`_slim`).
    kept_confidence: float | None = None

    @property
    def question(self) -> str:
        """The question the response is counted under (reviewed > proposed > imported)."""
        if self.labels is not None and self.labels.question:
            return self.labels.question
        return self.response.question or NO_QUESTION

    @property
    def confidence(self) -> float | None:
        return self.proposal.confidence if self.proposal is not None else self.kept_confidence

    @property
    def person(self) -> str:
        """Who answered: the respondent id, else the response itself (one person each)."""
        return person_key(self.response)

    def evidence(self, code: str) -> str | None:
        """The model's evidence quote for ``code``, if its proposal gave one."""
        if self.proposal is None or self.proposal.proposal is None:
            return None
        for assignment in self.proposal.proposal.themes:
            if assignment.code == code and assignment.evidence:
                return assignment.evidence
        return None


#: Responses read from the store at a time by :func:`iter_coded`.
CODED_BATCH = 2000


def collect_coded(store: Store) -> list[CodedResponse]:
    """Every response in import order with its labels in force (reviewed, else proposed)."""
    return list(iter_coded(store))


def iter_coded(store: Store, batch_size: int = CODED_BATCH) -> Iterator[CodedResponse]:
    """:func:`collect_coded` one batch of responses at a time.

    Each batch reads only its own responses' proposals and decisions, so an export of a
    500,000-response project holds a batch in memory, not the project.
    """
    for batch in store.response_batches(batch_size):
        ids = [response.id for response in batch]
        finals = store.final_labels(response_ids=ids)
        reviewed = store.reviewed_response_ids(ids) if finals else set()
        proposals = store.current_proposals(ids)
        notes: dict[str, list[str]] = {}
        for noted in store.decisions(response_ids=ids):
            if noted.note:
                notes.setdefault(noted.response_id, []).append(f"{noted.reviewer}: {noted.note}")
        for response in batch:
            decision = finals.get(response.id)
            proposal = proposals.get(response.id)
            if decision is not None and decision.labels is not None:
                labels: Labels | None = decision.labels
                # A quote flag on an unreviewed response carries the model's labels.
                source: LabelSource = "reviewed" if response.id in reviewed else "model"
            elif proposal is not None and proposal.proposal is not None:
                labels = Labels.from_proposal(proposal.proposal)
                source = "model"
            else:
                labels, source = None, "uncoded"
            yield CodedResponse(
                response=response,
                labels=labels,
                source=source,
                proposal=proposal,
                decision=decision,
                notes=notes.get(response.id, []),
            )


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
        text = (
            f"{self.responses_received} response{'s' if self.responses_received != 1 else ''} "
            f"from {_people(self.respondents)}, {self.excluded} excluded as not relevant"
        )
        if self.uncoded:
            text += f", {self.uncoded} not yet coded"
        return text + "."

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


def _people(count: int) -> str:
    return f"{count} {'person' if count == 1 else 'people'}"


def person_key(response: Response) -> str:
    """The respondent id, else a key of the response's own (counted as one person)."""
    return response.respondent or f"response:{response.id}"


def _value(response: Response, name: str | None) -> str | None:
    if name is None:
        return None
    value = response.attributes.get(name)
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


@dataclass(frozen=True)
class AttributionFields:
    """Which response attributes hold the role, organisation and organisation type."""

    role: str | None = None
    organisation: str | None = None
    organisation_type: str | None = None

    @property
    def used(self) -> str:
        """The attribute a quote is attributed by first (shown in the summary)."""
        return self.role or self.organisation or self.organisation_type or ROLE_FIELDS[0]


def attribute_names(responses: Sequence[Response]) -> list[str]:
    """Every attribute name the responses carry, sorted."""
    return sorted({name for response in responses for name in response.attributes})


def attribution_fields(
    responses: Sequence[Response], configured: str | None = None
) -> AttributionFields:
    """The attributes to attribute quotes by and to break counts down by.

    ``configured`` (``--attribution-field``) replaces the role; it must be an attribute
    of at least one response, else :class:`UnknownAttributionField` lists those there are.
    """
    present = {
        name
        for response in responses
        for name, value in response.attributes.items()
        if value is not None and str(value).strip()
    }
    if configured:
        known = attribute_names(responses)
        if configured not in known:
            import difflib

            close = difflib.get_close_matches(configured, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            available = ", ".join(known) if known else "(none: the responses have no attributes)"
            raise UnknownAttributionField(
                f"--attribution-field {configured!r}: no response has that attribute.{hint} "
                f"Attributes of this project's responses: {available}."
            )
    role = configured or next((name for name in ROLE_FIELDS if name in present), None)

    def first(names: Sequence[str]) -> str | None:
        return next((name for name in names if name in present and name != role), None)

    return AttributionFields(
        role=role,
        organisation=first(ORGANISATION_FIELDS),
        organisation_type=first(ORGANISATION_TYPE_FIELDS),
    )


def attribution_for(response: Response, fields: AttributionFields | None = None) -> str:
    """Who said it: 'Programme Manager, Health Innovation Wessex'.

    Role and organisation; the organisation type stands in for a missing organisation; either
    alone when only one is known; 'Respondent' when neither is.
    """
    if fields is None:
        fields = attribution_fields([response])
    role = _value(response, fields.role)
    where = _value(response, fields.organisation) or _value(response, fields.organisation_type)
    parts = [role] if role else []
    if where and (role is None or where.lower() != role.lower()):
        parts.append(where)
    return ", ".join(parts) if parts else ANONYMOUS_RESPONDENT


def _theme_lookup(codebook: Codebook, code: str) -> Theme:
    try:
        return codebook.theme(code)
    except KeyError:
        # A code no longer (or never) in the codebook still counts, under its id.
        return Theme(id=code, label=code, definition="(not in the codebook)")


def _theme_tree(
    codebook: Codebook, members: list[CodedResponse], relevant: int
) -> list[ThemeCount]:
    """Themes coded at least once, as a tree of parents and sub-themes.

    A theme's n is the number of responses coded with it, each counted once. Whether a
    sub-theme also counts for its parent is the codebook's rule
    (``sub_themes_imply_parent``, applied by ``Codebook.with_parents``): by default it
    does not, so a parent shown only because of its sub-themes has n=0.
    """
    direct: dict[str, set[str]] = {}
    reviewed_ids = {m.response.id for m in members if m.source == "reviewed"}
    for member in members:
        assert member.labels is not None
        for code in codebook.with_parents(list(dict.fromkeys(member.labels.themes))):
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

    reach: dict[str, int] = {}

    def build(code: str) -> ThemeCount:
        ids = set(direct.get(code, set()))
        reach[code] = len(ids_under(code))
        theme = themes[code]
        nodes = [build(child) for child in children.get(code, [])]
        return ThemeCount(
            theme_id=code,
            label=theme.label,
            definition=theme.definition,
            n=len(ids),
            share=len(ids) / relevant if relevant else 0.0,
            reviewed=len(ids & reviewed_ids),
            children=_sorted_nodes(nodes, order, reach),
        )

    return _sorted_nodes([build(code) for code in children.get(None, [])], order, reach)


def _sorted_nodes(
    nodes: list[ThemeCount], order: dict[str, int], reach: dict[str, int]
) -> list[ThemeCount]:
    # Largest first, as in the seed's mind maps; a parent with big sub-themes is not sunk
    # to the bottom by its own small n; codebook order breaks ties.
    return sorted(
        nodes,
        key=lambda node: (
            -node.n,
            -reach.get(node.theme_id, 0),
            order.get(node.theme_id, 1 << 30),
            node.theme_id,
        ),
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
    fields: AttributionFields,
    max_quotes: int,
) -> tuple[list[Quote], bool]:
    """Reviewer-flagged quotes when there are any, else the best coded answers.

    Either way: no stance-only or empty answer, no text twice, one quote per person
    while other people are left, different roles and organisations preferred.
    """
    # A reviewer flag counts even on a response whose labels are not reviewed yet.
    flagged = [
        m
        for m in members
        if m.decision is not None
        and m.labels
        and m.labels.quote
        and quotable(m.response.text, flagged=True)
    ]
    chosen_flagged = bool(flagged)
    if flagged:
        candidates = flagged
    else:
        # No reviewer picked quotes yet: the most confident coded responses stand in.
        candidates = [
            m for m in members if m.labels and m.labels.themes and quotable(m.response.text)
        ]
    ranked = sorted(
        candidates,
        key=lambda m: (m.source != "reviewed", -(m.confidence or 0.0), -len(m.response.text)),
    )
    keys: QuoteKeys[CodedResponse] = QuoteKeys(
        text=lambda m: m.response.text,
        person=lambda m: m.person,
        role=lambda m: _value(m.response, fields.role),
        organisation=lambda m: _value(m.response, fields.organisation),
        themes=lambda m: m.labels.themes if m.labels else [],
    )
    quotes = []
    for member in select_quotes(ranked, keys, max_quotes):
        assert member.labels is not None
        quotes.append(
            Quote(
                response_id=member.response.id,
                text=member.response.text.strip(),
                attribution=attribution_for(member.response, fields),
                themes=[_theme_lookup(codebook, code).label for code in member.labels.themes],
                stance=member.labels.stance,
                source=member.source,
                flagged=chosen_flagged,
            )
        )
    return quotes, chosen_flagged


def _slim(coded: CodedResponse) -> CodedResponse:
    """``coded`` with only what :func:`build_report` reads: labels, source, the response,
    the confidence, and the decision only when it flags a quote."""
    flagged = coded.decision is not None and coded.labels is not None and coded.labels.quote
    return CodedResponse(
        response=coded.response,
        labels=coded.labels,
        source=coded.source,
        decision=coded.decision if flagged else None,
        kept_confidence=coded.confidence,
    )


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

    ``attribution_field`` names the attribute quotes are attributed by in place of the
    role (an attribute no response has is an :class:`UnknownAttributionField` error).
    ``generated_at`` is printed as given; leave it None for reproducible output.
    """
    if codebook is None:
        codebook_version, codebook = store.codebook(codebook_version)
    # Only what the report reads is kept of each response (not its proposal's evidence and
    # rationale, nor decisions other than quote flags): at 500,000 responses the full
    # records took 3.4 GB.
    coded = [_slim(c) for c in iter_coded(store)]
    responses = [c.response for c in coded]
    fields = attribution_fields(responses, attribution_field)

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
        has_stance = codebook.has_stance(None if question_id == NO_QUESTION else question_id)
        stance = _stance_counts(codebook, relevant) if has_stance else []
        quotes, quotes_flagged = _quotes(relevant, codebook, fields, max_quotes)
        questions.append(
            QuestionReport(
                question_id=question_id,
                short_name=short_name,
                text=text,
                responses=len(members),
                relevant=len(relevant),
                excluded=len(labelled) - len(relevant),
                has_stance=has_stance,
                stance=stance,
                resonance=_resonance_sentence(stance, len(relevant)) if has_stance else "",
                themes=_theme_tree(codebook, relevant, len(relevant)),
                untagged=sum(1 for m in relevant if m.labels is not None and not m.labels.themes),
                quotes=quotes,
                quotes_flagged=quotes_flagged,
                status=status,
                people=len({m.person for m in members}),
            )
        )

    labelled_all = [c for c in coded if c.labels is not None]
    excluded = [c for c in labelled_all if c.labels is not None and not c.labels.relevant]
    reasons = Counter(
        reason_kind(c.labels.relevance_reason) if c.labels is not None else ""
        for c in excluded
    )
    tags = Counter(tag for c in coded for tag in dict.fromkeys(c.response.tags))
    organisations = {
        value.lower()
        for c in coded
        if (value := _value(c.response, fields.organisation)) is not None
    }
    summary = SummaryStats(
        responses_received=len(coded),
        respondents=len({c.person for c in coded}),
        relevant=len(labelled_all) - len(excluded),
        excluded=len(excluded),
        excluded_reasons=_most_common(reasons),
        uncoded=overall.uncoded,
        by_tag=_most_common(tags),
        breakdowns=_breakdowns(coded, fields),
        attribution_field=fields.used,
        organisations=len(organisations) if organisations else None,
        status=overall,
        without_respondent=sum(1 for c in coded if not c.response.respondent),
    )
    return ReportData(
        title=title or codebook.name,
        codebook_name=codebook.name,
        codebook_version=codebook_version,
        generated_at=generated_at,
        summary=summary,
        questions=questions,
        status=overall,
        sub_themes_imply_parent=codebook.sub_themes_imply_parent,
        team=reviewer_stats(store),  # the coding team's figures are not streamed: shared code
    )


def _breakdowns(coded: list[CodedResponse], fields: AttributionFields) -> list[Breakdown]:
    """Responses and people by role, organisation type and organisation.

    The role table always appears (everyone 'not stated' says the survey did not ask);
    the others only when some response carries them.
    """
    # A configured field that is not a role (e.g. 'locality') is shown under its own name.
    role_kind = "role" if fields.role is None or fields.role in ROLE_FIELDS else fields.role
    result = []
    for kind, name in (
        (role_kind, fields.role),
        ("organisation type", fields.organisation_type),
        ("organisation", fields.organisation),
    ):
        if name is None and kind != "role":
            continue
        responses: Counter[str] = Counter()
        people: dict[str, set[str]] = {}
        # Spelling varies between rows of a Forms export ('HI Wessex', 'hi wessex'):
        # group case-insensitively and show the first spelling met.
        spelling: dict[str, str] = {}
        for member in coded:
            value = _value(member.response, name) or NOT_STATED
            key = spelling.setdefault(value.lower(), value)
            responses[key] += 1
            people.setdefault(key, set()).add(member.person)
        rows = [
            BreakdownRow(value=value, responses=n, people=len(people[value]))
            for value, n in _most_common(responses)
        ]
        # 'not stated' is not a group of its own: it goes last, whatever its size.
        rows.sort(key=lambda row: row.value == NOT_STATED)
        result.append(
            Breakdown(field=name or ROLE_FIELDS[0], kind=kind.replace("_", " "), rows=rows)
        )
    return result


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
