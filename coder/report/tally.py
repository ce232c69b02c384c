"""The streamed tally: the report's counts and quote candidates, fed a coded response at a time."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from coder.relevance_reasons import reason_kind
from coder.report.attribution import AttributionFields, attribute_value, attribution_of
from coder.report.coded import CodedResponse, person_key
from coder.report.data import NOT_STATED, LabelSource, Quote, ReviewStatus
from coder.report.quotes import QuoteKeys, QuotePool, quotable, select_from_pool
from coder.report.themes import ThemeSets, theme_lookup
from schemas import Codebook, Response

# --- the streamed tally ----------------------------------------------------------------------
# build_report reads the project once, a batch at a time (iter_coded), and keeps counts, the
# distinct respondent ids it must count, and a bounded pool of quote candidates: at 500,000
# responses holding every response took 1.9 GB.


@dataclass
class People:
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
class ValueTally:
    """Responses and people by the values of one attribute (one breakdown table)."""

    responses: Counter[str] = field(default_factory=Counter)
    people: dict[str, People] = field(default_factory=dict)
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
        self.people.setdefault(key, People()).add(response)


@dataclass
class Candidate:
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
class QuestionTally:
    responses: int = 0
    labelled: int = 0
    relevant: int = 0
    untagged: int = 0
    status: ReviewStatus = field(default_factory=ReviewStatus)
    people: People = field(default_factory=People)
    stance: Counter[str] = field(default_factory=Counter)
    theme_sets: ThemeSets = field(default_factory=Counter)
    flagged: QuotePool[Candidate] = field(default_factory=QuotePool)
    #: The model's best answers, until a reviewer flags a quote (then flags alone count).
    unflagged: QuotePool[Candidate] | None = field(default_factory=QuotePool)


class ReportTally:
    """Everything :func:`build_report` counts, fed one coded response at a time."""

    def __init__(self, codebook: Codebook, tracked: Sequence[str], pool_size: int | None) -> None:
        self.codebook = codebook
        #: Attributes that may be the role or organisation (known once every response is seen).
        self.tracked = list(tracked)
        self.pool_size = pool_size
        self.total = 0
        self.status = ReviewStatus()
        self.people = People()
        self.without_respondent = 0
        self.labelled = 0
        self.excluded = 0
        self.reasons: Counter[str] = Counter()
        self.tags: Counter[str] = Counter()
        self.present: set[str] = set()
        self.values = {name: ValueTally() for name in self.tracked}
        self.questions: dict[str, QuestionTally] = {}
        self._with_parents: dict[tuple[str, ...], frozenset[str]] = {}

    def question(self, question_id: str) -> QuestionTally:
        tally = self.questions.get(question_id)
        if tally is None:
            tally = self.questions[question_id] = QuestionTally(
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
            value = attribute_value(response.attributes, name)
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
            self.reasons[reason_kind(labels.relevance_reason)] += 1
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
    tally: QuestionTally, coded: CodedResponse, position: int, attributes: dict[str, str]
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
        Candidate(
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


def pick_quotes(
    tally: QuestionTally, codebook: Codebook, fields: AttributionFields, max_quotes: int
) -> tuple[list[Quote], bool] | None:
    """The question's quotes (and whether reviewers flagged them), or None when the pool
    turned away candidates that might have been chosen (see :func:`select_from_pool`).

    Either way: no stance-only or empty answer, no text twice, one quote per person
    while other people are left, different roles and organisations preferred.
    """
    chosen_flagged = bool(tally.flagged)
    pool = tally.flagged if chosen_flagged else tally.unflagged
    assert pool is not None  # the unflagged pool is dropped only once a flag is kept
    keys: QuoteKeys[Candidate] = QuoteKeys(
        text=lambda c: c.text,
        person=lambda c: c.person,
        role=lambda c: attribute_value(c.attributes, fields.role),
        organisation=lambda c: attribute_value(c.attributes, fields.organisation),
        themes=lambda c: c.themes,
    )
    chosen = select_from_pool(pool, keys, max_quotes)
    if chosen is None:
        return None
    quotes = [
        Quote(
            response_id=candidate.response_id,
            text=candidate.text.strip(),
            attribution=attribution_of(candidate.attributes, fields),
            themes=[theme_lookup(codebook, code).label for code in candidate.themes],
            stance=candidate.stance,
            source=candidate.source,
            flagged=chosen_flagged,
        )
        for candidate in chosen
    ]
    return quotes, chosen_flagged
