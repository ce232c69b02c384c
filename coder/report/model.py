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

from collections import Counter
from collections.abc import Iterable, Sequence

from coder.report.attribution import (
    ANONYMOUS_RESPONDENT,
    DEFAULT_ATTRIBUTION_FIELDS,
    ORGANISATION_FIELDS,
    ORGANISATION_TYPE_FIELDS,
    ROLE_FIELDS,
    AttributionFields,
    UnknownAttributionField,
    attribute_names,
    attribute_value,
    attribution_fields,
    attribution_for,
    check_attribution_field,
    fields_from,
)
from coder.report.coded import CODED_BATCH, CodedResponse, collect_coded, iter_coded, person_key
from coder.report.data import (
    NO_QUESTION,
    NOT_STATED,
    Breakdown,
    BreakdownRow,
    LabelSource,
    QuestionReport,
    Quote,
    ReportData,
    ReviewStatus,
    StanceCount,
    SummaryStats,
    ThemeCount,
    walk_themes,
)
from coder.report.quotes import POOL_PER_GROUP, QuotePool
from coder.report.tally import QuestionTally, ReportTally, ValueTally, offer_quote, pick_quotes
from coder.report.themes import ThemeSets, resonance_sentence, stance_counts, theme_tree
from coder.status import reviewer_stats
from coder.store import Store
from schemas import Codebook

# The names this module has always offered (the report's records and helpers now live in
# the modules above, one concept each).
__all__ = [
    "ANONYMOUS_RESPONDENT",
    "CODED_BATCH",
    "DEFAULT_ATTRIBUTION_FIELDS",
    "NOT_STATED",
    "NO_QUESTION",
    "ORGANISATION_FIELDS",
    "ORGANISATION_TYPE_FIELDS",
    "ROLE_FIELDS",
    "AttributionFields",
    "Breakdown",
    "BreakdownRow",
    "CodedResponse",
    "LabelSource",
    "QuestionReport",
    "Quote",
    "ReportData",
    "ReviewStatus",
    "StanceCount",
    "SummaryStats",
    "ThemeCount",
    "ThemeSets",
    "UnknownAttributionField",
    "attribute_names",
    "attribution_fields",
    "attribution_for",
    "build_report",
    "check_attribution_field",
    "collect_coded",
    "iter_coded",
    "offer_quote",
    "person_key",
    "walk_themes",
]

Quotes = dict[str, tuple[list[Quote], bool]]


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
    tracked = _tracked_attributes(store, attribution_field)
    tally = ReportTally(codebook, tracked, quote_pool_size)
    for position, coded in enumerate(iter_coded(store)):
        tally.add(coded, position)
    fields = fields_from(tally.present, attribution_field)
    chosen = _choose_quotes(store, tally, codebook, tracked, fields, max_quotes)
    questions = [
        _question_report(codebook, question_id, tally.questions[question_id], chosen[question_id])
        for question_id in _question_order(codebook, tally.questions)
    ]
    return ReportData(
        title=title or codebook.name,
        codebook_name=codebook.name,
        codebook_version=codebook_version,
        generated_at=generated_at,
        summary=_summary(tally, fields),
        questions=questions,
        status=tally.status,
        sub_themes_imply_parent=codebook.sub_themes_imply_parent,
        team=reviewer_stats(store),
    )


def _tracked_attributes(store: Store, attribution_field: str | None) -> list[str]:
    """The attributes the tally follows: those that may be the role or organisation, and
    the configured attribution field (which must be an attribute of some response)."""
    known = store.attribute_names()
    if attribution_field:
        check_attribution_field(attribution_field, known)
    candidates = (*DEFAULT_ATTRIBUTION_FIELDS, *([attribution_field] if attribution_field else []))
    return [name for name in dict.fromkeys(candidates) if name in known]


def _choose_quotes(
    store: Store,
    tally: ReportTally,
    codebook: Codebook,
    tracked: Sequence[str],
    fields: AttributionFields,
    max_quotes: int,
) -> Quotes:
    """Each question's quotes from its pool; a question whose pool cannot prove its choice
    is read again with every candidate kept."""
    chosen: Quotes = {}
    unproven = []
    for question_id, question_tally in tally.questions.items():
        picked = pick_quotes(question_tally, codebook, fields, max_quotes)
        if picked is None:
            unproven.append(question_id)
        else:
            chosen[question_id] = picked
    if unproven:
        chosen.update(
            _quotes_from_every_candidate(store, codebook, tracked, fields, max_quotes, unproven)
        )
    return chosen


def _question_report(
    codebook: Codebook, question_id: str, q: QuestionTally, picked: tuple[list[Quote], bool]
) -> QuestionReport:
    """One question's section: counts, stance split, theme tree and quotes."""
    try:
        question = codebook.question(question_id)
        short_name, text = question.short_name, question.text
    except KeyError:
        short_name, text = None, "" if question_id == NO_QUESTION else question_id
    has_stance = codebook.has_stance(None if question_id == NO_QUESTION else question_id)
    stance = stance_counts(codebook, q.stance, q.relevant) if has_stance else []
    quotes, quotes_flagged = picked
    return QuestionReport(
        question_id=question_id,
        short_name=short_name,
        text=text,
        responses=q.responses,
        relevant=q.relevant,
        excluded=q.labelled - q.relevant,
        has_stance=has_stance,
        stance=stance,
        resonance=resonance_sentence(stance, q.relevant) if has_stance else "",
        themes=theme_tree(codebook, q.theme_sets, q.relevant),
        untagged=q.untagged,
        quotes=quotes,
        quotes_flagged=quotes_flagged,
        status=q.status,
        people=len(q.people),
    )


def _summary(tally: ReportTally, fields: AttributionFields) -> SummaryStats:
    """The report's opening figures: responses, people, exclusions, tags and breakdowns."""
    organisations = tally.values[fields.organisation].given if fields.organisation else set()
    return SummaryStats(
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


def _quotes_from_every_candidate(
    store: Store,
    codebook: Codebook,
    tracked: Sequence[str],
    fields: AttributionFields,
    max_quotes: int,
    question_ids: Sequence[str],
) -> Quotes:
    """Quotes of ``question_ids`` from every candidate, read again from the store.

    Rare: only when duplicates or repeated people used up a pool group's best candidates.
    Memory then grows with those questions' quotable answers (their text and attribution).
    """
    tallies = {
        question_id: QuestionTally(flagged=QuotePool(None), unflagged=QuotePool(None))
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
            if (value := attribute_value(coded.response.attributes, name)) is not None
        }
        offer_quote(tally, coded, position, attributes)
    result = {}
    for question_id, tally in tallies.items():
        picked = pick_quotes(tally, codebook, fields, max_quotes)
        assert picked is not None  # nothing is turned away without a bound
        result[question_id] = picked
    return result


def _breakdowns(tally: ReportTally, fields: AttributionFields) -> list[Breakdown]:
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
            values = ValueTally(
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
