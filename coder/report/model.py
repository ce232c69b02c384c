"""The data of a rapid-insight report, computed from a project store.

Everything the Markdown, HTML and XLSX renderers show is computed here, once, so the three
formats always agree. A response counts with its reviewed labels (``Store.final_labels()``)
and, where nobody has reviewed it yet, with the model's proposal
(``Store.current_proposals()``); every count says how many of its labels are which, because a
reader must know how much of a finding a human has checked.

:func:`build_report` reads the project once, a batch at a time, tallying counts and keeping
a bounded pool of quote candidates (:class:`coder.report.quotes.QuotePool`), so its memory
grows with questions, themes, attribute values and respondents, not with responses.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from coder.errors import CoderError
from coder.report.quotes import POOL_PER_GROUP, QuoteKeys, QuotePool, quotable, select_from_pool
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


def _people(count: int) -> str:
    return f"{count} {'person' if count == 1 else 'people'}"


def person_key(response: Response) -> str:
    """The respondent id, else a key of the response's own (counted as one person)."""
    return response.respondent or f"response:{response.id}"


def _attribute(attributes: Mapping[str, Any], name: str | None) -> str | None:
    if name is None:
        return None
    value = attributes.get(name)
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
        check_attribution_field(configured, attribute_names(responses))
    return _fields_from(present, configured)


def check_attribution_field(configured: str, known: Sequence[str]) -> None:
    """Raise :class:`UnknownAttributionField` unless ``configured`` is one of ``known``."""
    if configured in known:
        return
    import difflib

    known = sorted(known)
    close = difflib.get_close_matches(configured, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    available = ", ".join(known) if known else "(none: the responses have no attributes)"
    raise UnknownAttributionField(
        f"--attribution-field {configured!r}: no response has that attribute.{hint} "
        f"Attributes of this project's responses: {available}."
    )


def _fields_from(present: set[str], configured: str | None) -> AttributionFields:
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
    return _attribution(response.attributes, fields)


def _attribution(attributes: Mapping[str, Any], fields: AttributionFields) -> str:
    role = _attribute(attributes, fields.role)
    where = _attribute(attributes, fields.organisation) or _attribute(
        attributes, fields.organisation_type
    )
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


#: A question's relevant responses by the theme set they count for (parents added under the
#: codebook's rule) and whether a human reviewed them: the theme tree needs no more.
ThemeSets = Counter[tuple[frozenset[str], bool]]


def _theme_tree(codebook: Codebook, theme_sets: ThemeSets, relevant: int) -> list[ThemeCount]:
    """Themes coded at least once, as a tree of parents and sub-themes.

    A theme's n is the number of responses coded with it, each counted once. Whether a
    sub-theme also counts for its parent is the codebook's rule
    (``sub_themes_imply_parent``, applied by ``Codebook.with_parents``): by default it
    does not, so a parent shown only because of its sub-themes has n=0.
    """
    direct: Counter[str] = Counter()
    reviewed: Counter[str] = Counter()
    for (codes, is_reviewed), count in theme_sets.items():
        for code in codes:
            direct[code] += count
            if is_reviewed:
                reviewed[code] += count
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

    def codes_under(code: str) -> set[str]:
        result = {code}
        for child in children.get(code, []):
            result |= codes_under(child)
        return result

    reach: dict[str, int] = {}

    def build(code: str) -> ThemeCount:
        under = codes_under(code)
        # Responses coded with the theme or any theme below it, each once.
        reach[code] = sum(count for (codes, _), count in theme_sets.items() if codes & under)
        theme = themes[code]
        n = direct.get(code, 0)
        nodes = [build(child) for child in children.get(code, [])]
        return ThemeCount(
            theme_id=code,
            label=theme.label,
            definition=theme.definition,
            n=n,
            share=n / relevant if relevant else 0.0,
            reviewed=reviewed.get(code, 0),
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


def _stance_counts(codebook: Codebook, counts: Counter[str], total: int) -> list[StanceCount]:
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


# --- the streamed tally ----------------------------------------------------------------------
# build_report reads the project once, a batch at a time (iter_coded), and keeps counts, the
# distinct respondent ids it must count, and a bounded pool of quote candidates: at 500,000
# responses holding every response took 1.9 GB.


@dataclass
class _People:
    """Distinct people: respondent ids, plus one per response without one."""

    respondents: set[str] = field(default_factory=set)
    anonymous: int = 0

    def add(self, response: Response) -> None:
        if response.respondent:
            # Interned: the same id sits in many tallies' sets, stored once.
            self.respondents.add(sys.intern(response.respondent))
        else:
            self.anonymous += 1

    def __len__(self) -> int:
        return len(self.respondents) + self.anonymous


@dataclass
class _ValueTally:
    """Responses and people by the values of one attribute (one breakdown table)."""

    responses: Counter[str] = field(default_factory=Counter)
    people: dict[str, _People] = field(default_factory=dict)
    # Spelling varies between rows of a Forms export ('HI Wessex', 'hi wessex'):
    # group case-insensitively and show the first spelling met.
    spelling: dict[str, str] = field(default_factory=dict)
    #: The values given, lower case (the summary counts organisations from them).
    given: set[str] = field(default_factory=set)

    def add(self, value: str | None, response: Response) -> None:
        if value is not None:
            self.given.add(value.lower())
        value = value or NOT_STATED
        key = self.spelling.setdefault(value.lower(), value)
        self.responses[key] += 1
        self.people.setdefault(key, _People()).add(response)


@dataclass
class _Candidate:
    """What quote choice and the Quote read of a response (not the whole record)."""

    response_id: str
    text: str
    person: str
    #: The tracked attributes' values (normalised), for attribution.
    attributes: dict[str, str]
    themes: tuple[str, ...]
    stance: str | None
    source: LabelSource


@dataclass
class _QuestionTally:
    responses: int = 0
    labelled: int = 0
    relevant: int = 0
    untagged: int = 0
    status: ReviewStatus = field(default_factory=ReviewStatus)
    people: _People = field(default_factory=_People)
    stance: Counter[str] = field(default_factory=Counter)
    theme_sets: ThemeSets = field(default_factory=Counter)
    flagged: QuotePool[_Candidate] = field(default_factory=QuotePool)
    #: The model's best answers, until a reviewer flags a quote (then flags alone count).
    unflagged: QuotePool[_Candidate] | None = field(default_factory=QuotePool)


class _ReportTally:
    """Everything :func:`build_report` counts, fed one coded response at a time."""

    def __init__(self, codebook: Codebook, tracked: Sequence[str], pool_size: int | None) -> None:
        self.codebook = codebook
        #: Attributes that may be the role or organisation (known once every response is seen).
        self.tracked = list(tracked)
        self.pool_size = pool_size
        self.total = 0
        self.status = ReviewStatus()
        self.people = _People()
        self.without_respondent = 0
        self.labelled = 0
        self.excluded = 0
        self.reasons: Counter[str] = Counter()
        self.tags: Counter[str] = Counter()
        self.present: set[str] = set()
        self.values = {name: _ValueTally() for name in self.tracked}
        self.questions: dict[str, _QuestionTally] = {}
        self._with_parents: dict[tuple[str, ...], frozenset[str]] = {}

    def question(self, question_id: str) -> _QuestionTally:
        tally = self.questions.get(question_id)
        if tally is None:
            tally = self.questions[question_id] = _QuestionTally(
                flagged=QuotePool(self.pool_size), unflagged=QuotePool(self.pool_size)
            )
        return tally

    def add(self, coded: CodedResponse, position: int) -> None:
        response, labels = coded.response, coded.labels
        self.total += 1
        self.status.add(coded.source)
        self.people.add(response)
        if not response.respondent:
            self.without_respondent += 1
        attributes = {}
        for name in self.tracked:
            value = _attribute(response.attributes, name)
            self.values[name].add(value, response)
            if value is not None:
                self.present.add(name)
                attributes[name] = value
        self.tags.update(dict.fromkeys(response.tags, 1))
        tally = self.question(coded.question)
        tally.responses += 1
        tally.status.add(coded.source)
        tally.people.add(response)
        if labels is None:
            return
        self.labelled += 1
        tally.labelled += 1
        if not labels.relevant:
            self.excluded += 1
            self.reasons[labels.relevance_reason or "no reason given"] += 1
            return
        tally.relevant += 1
        tally.stance[labels.stance or NOT_STATED] += 1
        themes = tuple(dict.fromkeys(labels.themes))
        codes = self._with_parents.get(themes)
        if codes is None:
            codes = self._with_parents[themes] = frozenset(self.codebook.with_parents(list(themes)))
        tally.theme_sets[(codes, coded.source == "reviewed")] += 1
        if not labels.themes:
            tally.untagged += 1
        offer_quote(tally, coded, position, attributes)


def offer_quote(
    tally: _QuestionTally, coded: CodedResponse, position: int, attributes: dict[str, str]
) -> None:
    """Keep a relevant response as a quote candidate if it may be one and ranks high enough.

    Reviewer-flagged quotes when there are any, else the best coded answers: reviewed
    before model-only, then most confident, then longest, then first imported.
    """
    response, labels = coded.response, coded.labels
    assert labels is not None
    text = response.text
    rank = (coded.source != "reviewed", -(coded.confidence or 0.0), -len(text), position)
    # Grouped as select_quotes prefers candidates alike (role, organisation), by every
    # tracked attribute: finer, which is also right.
    group = (tuple(attributes), tuple(value.lower() for value in attributes.values()))
    # A reviewer flag counts even on a response whose labels are not reviewed yet.
    if coded.decision is not None and labels.quote:
        pool, flagged = tally.flagged, True
    elif tally.unflagged is not None and labels.themes:
        pool, flagged = tally.unflagged, False
    else:
        return
    if not pool.has_room(group, rank) or not quotable(text, flagged=flagged):
        return
    pool.add(
        group,
        rank,
        _Candidate(
            response_id=response.id,
            text=text,
            person=person_key(response),
            attributes=attributes,
            themes=tuple(labels.themes),
            stance=labels.stance,
            source=coded.source,
        ),
    )
    if flagged:
        tally.unflagged = None  # no longer needed: flagged quotes win


def _quotes(
    tally: _QuestionTally, codebook: Codebook, fields: AttributionFields, max_quotes: int
) -> tuple[list[Quote], bool] | None:
    """The question's quotes (and whether reviewers flagged them), or None when the pool
    turned away candidates that might have been chosen (see :func:`select_from_pool`).

    Either way: no stance-only or empty answer, no text twice, one quote per person
    while other people are left, different roles and organisations preferred.
    """
    chosen_flagged = bool(tally.flagged)
    pool = tally.flagged if chosen_flagged else tally.unflagged
    assert pool is not None  # the unflagged pool is dropped only once a flag is kept
    keys: QuoteKeys[_Candidate] = QuoteKeys(
        text=lambda c: c.text,
        person=lambda c: c.person,
        role=lambda c: _attribute(c.attributes, fields.role),
        organisation=lambda c: _attribute(c.attributes, fields.organisation),
        themes=lambda c: c.themes,
    )
    chosen = select_from_pool(pool, keys, max_quotes)
    if chosen is None:
        return None
    quotes = [
        Quote(
            response_id=candidate.response_id,
            text=candidate.text.strip(),
            attribution=_attribution(candidate.attributes, fields),
            themes=[_theme_lookup(codebook, code).label for code in candidate.themes],
            stance=candidate.stance,
            source=candidate.source,
            flagged=chosen_flagged,
        )
        for candidate in chosen
    ]
    return quotes, chosen_flagged


def _question_order(codebook: Codebook, present: Iterable[str]) -> list[str]:
    present = list(present)
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
    quote_pool_size: int | None = POOL_PER_GROUP,
) -> ReportData:
    """Compute the report from the store (latest codebook unless one is given).

    ``attribution_field`` names the attribute quotes are attributed by in place of the
    role (an attribute no response has is an :class:`UnknownAttributionField` error).
    ``generated_at`` is printed as given; leave it None for reproducible output.

    The store is read a batch at a time: memory grows with the number of questions, themes,
    attribute values and distinct respondents, and with ``quote_pool_size`` candidates per
    question, role, organisation and theme set (None keeps every candidate), not with the
    number of responses. A question whose pool cannot prove its quotes are the ones the
    full list gives is read again with every candidate kept.
    """
    if codebook is None:
        codebook_version, codebook = store.codebook(codebook_version)
    known = store.attribute_names()
    if attribution_field:
        check_attribution_field(attribution_field, known)
    candidates = (*DEFAULT_ATTRIBUTION_FIELDS, *([attribution_field] if attribution_field else []))
    tracked = [name for name in dict.fromkeys(candidates) if name in known]

    tally = _ReportTally(codebook, tracked, quote_pool_size)
    for position, coded in enumerate(iter_coded(store)):
        tally.add(coded, position)
    fields = _fields_from(tally.present, attribution_field)

    chosen: dict[str, tuple[list[Quote], bool]] = {}
    unproven = []
    for question_id, question_tally in tally.questions.items():
        picked = _quotes(question_tally, codebook, fields, max_quotes)
        if picked is None:
            unproven.append(question_id)
        else:
            chosen[question_id] = picked
    if unproven:
        chosen.update(
            _quotes_from_every_candidate(store, codebook, tracked, fields, max_quotes, unproven)
        )

    questions = []
    for question_id in _question_order(codebook, tally.questions):
        q = tally.questions[question_id]
        try:
            question = codebook.question(question_id)
            short_name, text = question.short_name, question.text
        except KeyError:
            short_name, text = None, "" if question_id == NO_QUESTION else question_id
        has_stance = codebook.has_stance(None if question_id == NO_QUESTION else question_id)
        stance = _stance_counts(codebook, q.stance, q.relevant) if has_stance else []
        quotes, quotes_flagged = chosen[question_id]
        questions.append(
            QuestionReport(
                question_id=question_id,
                short_name=short_name,
                text=text,
                responses=q.responses,
                relevant=q.relevant,
                excluded=q.labelled - q.relevant,
                has_stance=has_stance,
                stance=stance,
                resonance=_resonance_sentence(stance, q.relevant) if has_stance else "",
                themes=_theme_tree(codebook, q.theme_sets, q.relevant),
                untagged=q.untagged,
                quotes=quotes,
                quotes_flagged=quotes_flagged,
                status=q.status,
                people=len(q.people),
            )
        )

    organisations = tally.values[fields.organisation].given if fields.organisation else set()
    summary = SummaryStats(
        responses_received=tally.total,
        respondents=len(tally.people),
        relevant=tally.labelled - tally.excluded,
        excluded=tally.excluded,
        excluded_reasons=_most_common(tally.reasons),
        uncoded=tally.status.uncoded,
        by_tag=_most_common(tally.tags),
        breakdowns=_breakdowns(tally, fields),
        attribution_field=fields.used,
        organisations=len(organisations) if organisations else None,
        status=tally.status,
        without_respondent=tally.without_respondent,
    )
    return ReportData(
        title=title or codebook.name,
        codebook_name=codebook.name,
        codebook_version=codebook_version,
        generated_at=generated_at,
        summary=summary,
        questions=questions,
        status=tally.status,
        sub_themes_imply_parent=codebook.sub_themes_imply_parent,
        team=reviewer_stats(store),
    )


def _quotes_from_every_candidate(
    store: Store,
    codebook: Codebook,
    tracked: Sequence[str],
    fields: AttributionFields,
    max_quotes: int,
    question_ids: Sequence[str],
) -> dict[str, tuple[list[Quote], bool]]:
    """Quotes of ``question_ids`` from every candidate, read again from the store.

    Rare: only when duplicates or repeated people used up a pool group's best candidates.
    Memory then grows with those questions' quotable answers (their text and attribution).
    """
    tallies = {
        question_id: _QuestionTally(flagged=QuotePool(None), unflagged=QuotePool(None))
        for question_id in question_ids
    }
    for position, coded in enumerate(iter_coded(store)):
        tally = tallies.get(coded.question)
        labels = coded.labels
        if tally is None or labels is None or not labels.relevant:
            continue
        attributes = {
            name: value
            for name in tracked
            if (value := _attribute(coded.response.attributes, name)) is not None
        }
        offer_quote(tally, coded, position, attributes)
    result = {}
    for question_id, tally in tallies.items():
        picked = _quotes(tally, codebook, fields, max_quotes)
        assert picked is not None  # nothing is turned away without a bound
        result[question_id] = picked
    return result


def _breakdowns(tally: _ReportTally, fields: AttributionFields) -> list[Breakdown]:
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
        if name is None:
            # No role attribute: everyone is 'not stated'.
            values = _ValueTally(
                responses=Counter({NOT_STATED: tally.total}) if tally.total else Counter(),
                people={NOT_STATED: tally.people},
            )
        else:
            values = tally.values[name]
        rows = [
            BreakdownRow(value=value, responses=n, people=len(values.people[value]))
            for value, n in _most_common(values.responses)
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
