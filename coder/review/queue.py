"""What the queue shows and in which order: filters, review order, the next item to review."""

from __future__ import annotations

import difflib
import json
import operator
import re
import shlex
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass

from coder import review_queries as queries
from coder.errors import CoderError
from coder.review.index import REVIEWED, STATUSES, QueueEntry, ReviewIndex
from coder.store import Store


class FilterError(CoderError):
    """A queue filter names a key or a status that does not exist (a typo, usually)."""


@dataclass
class QueueFilter:
    """What the queue shows. Built from a filter string by :func:`parse_filter`."""

    question: str | None = None
    theme: str | None = None
    status: str | None = None  # one of STATUSES, 'flagged' or 'reviewed'
    tag: str | None = None
    reviewer: str | None = None  # items this reviewer has decided
    disagreement: bool = False
    min_confidence: float | None = None
    max_confidence: float | None = None
    same: str | None = None  # answers whose text equals this one (case, edge punctuation aside)
    text: str = ""

    def describe(self) -> str:
        """The filter as the string that would produce it."""
        parts = []
        for key in ("question", "theme", "status", "tag", "reviewer"):
            value = getattr(self, key)
            if value:
                parts.append(f"{key}:{value}")
        if self.disagreement:
            parts.append("disagree")
        if self.min_confidence is not None:
            parts.append(f"conf>={self.min_confidence:g}")
        if self.max_confidence is not None:
            parts.append(f"conf<={self.max_confidence:g}")
        if self.same is not None:
            parts.append("same:" + (self.same if self.same.isalnum() else json.dumps(self.same)))
        if self.text:
            parts.append(self.text)
        return " ".join(parts)


_FILTER_TOKEN = re.compile(r"^(question|q|theme|t|status|s|tag|reviewer|r|same):(.+)$")
_CONF_TOKEN = re.compile(r"^conf(?:idence)?(<=|>=|<|>)([0-9.]+)$")
_KEYED_TOKEN = re.compile(r"^([A-Za-z_]+)[:<>=]")
_KEYS = ("question", "theme", "status", "tag", "reviewer", "same", "conf", "confidence")
#: every status ``status:`` accepts
FILTER_STATUSES = (*STATUSES, "reviewed", "flagged")
FILTER_HELP = (
    "filter keys: question: (q:), theme: (t:), status: (s:), tag:, reviewer: (r:), same:, "
    "conf<0.6, disagree; other words search the text"
)


def _misspelled_key(token: str) -> str | None:
    """The key a ``questoin:H3``-style token was probably meant to have, else None.

    A token whose key is close to a real one is a typo, not words to search for: searching
    for it would show an empty queue and no hint why. Other ``word:value`` tokens (a URL,
    ``re:referral``) stay a text search.
    """
    match = _KEYED_TOKEN.match(token)
    if match is None:
        return None
    close = difflib.get_close_matches(match.group(1).lower(), _KEYS, n=1, cutoff=0.75)
    return close[0] if close else None


def parse_filter(text: str) -> QueueFilter:
    """Parse ``status:unreviewed question:H1 theme:cost tag:x reviewer:ana disagree conf<0.6 words``.

    Unknown words become a text search. Keys may be shortened to their first letter.
    ``same:yes`` or ``same:"strongly agree"`` keeps the answers that say exactly that.
    Raises :class:`FilterError` for a misspelled key (``questoin:H3``) or an unknown status.
    """
    result = QueueFilter()
    words = []
    aliases = {"q": "question", "t": "theme", "s": "status", "r": "reviewer"}
    try:
        # Quotes group words, so `same:"not really"` is one token.
        tokens = shlex.split(text)
    except ValueError:  # an unbalanced quote: read the words as typed
        tokens = text.split()
    for token in tokens:
        match = _FILTER_TOKEN.match(token)
        conf = _CONF_TOKEN.match(token)
        if match and match.group(1) == "same":
            result.same = normalised_answer(match.group(2))
        elif match:
            key = aliases.get(match.group(1), match.group(1))
            value = match.group(2).lstrip("#")
            if key == "status" and value not in FILTER_STATUSES:
                raise FilterError(
                    f"unknown status {value!r} in filter {text!r}: "
                    f"use one of {', '.join(FILTER_STATUSES)}"
                )
            setattr(result, key, value)
        elif conf:
            value = float(conf.group(2))
            if conf.group(1).startswith(">"):
                result.min_confidence = value
            else:
                result.max_confidence = value
        elif token in ("disagree", "disagreement"):
            result.disagreement = True
        elif (meant := _misspelled_key(token)) is not None:
            raise FilterError(
                f"unknown filter key in {token!r} (did you mean {meant!r}?); {FILTER_HELP}"
            )
        else:
            words.append(token)
    result.text = " ".join(words)
    return result


def check_filter(store: Store, queue_filter: QueueFilter) -> None:
    """Raise :class:`FilterError` when the filter's question is not one of the project's.

    ``question:h3`` for ``H3`` would otherwise open on an empty queue with no hint why.
    """
    question = queue_filter.question
    if not question or store.has_question(question):
        return
    known = sorted(
        (str(q) for q, _ in store.question_counts() if q is not None),
        key=lambda q: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", q)],
    )
    # Case first (h3 for H3), then a near spelling; two-letter ids are too alike for more.
    close = [q for q in known if q.lower() == question.lower()] or difflib.get_close_matches(
        question, known, n=1, cutoff=0.75
    )
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    raise FilterError(
        f"{store.path}: no answers to question {question!r}{hint}; "
        f"its questions are: {shown or '(none)'}"
    )


def order_entries(entries: Sequence[QueueEntry], order: str = "confidence") -> list[QueueEntry]:
    """Review order: 'confidence' (least confident first, the default) or 'import'."""
    # attrgetter and a list's __getitem__ are C calls: at 100k entries this is a few tens
    # of ms instead of the 130 ms a (confidence, position) tuple key per entry cost.
    by_position = sorted(entries, key=operator.attrgetter("position"))  # O(n) when sorted
    if order == "import":
        return by_position
    keys = [e.confidence if e.confidence is not None else -1.0 for e in by_position]
    # A stable sort of position-ordered entries by confidence keeps ties in import order.
    return [by_position[i] for i in sorted(range(len(keys)), key=keys.__getitem__)]


#: Characters that do not make two short answers different ("Yes." and "yes!").
_EDGE_CHARACTERS = " .!?,;:-\t\r\n\"'"


def normalised_answer(text: str) -> str:
    """An answer as the ``same:`` filter compares it: lower case, edge punctuation removed."""
    return text.strip(_EDGE_CHARACTERS).lower()


def same_text_matches(store: Store, text: str) -> set[str]:
    """Ids of responses that say exactly ``text`` (case and edge punctuation aside)."""
    return queries.responses_saying(store, text, _EDGE_CHARACTERS)


def text_matches(store: Store, text: str, limit: int | None = None) -> set[str]:
    """Ids of responses whose text or id contains ``text`` (case-insensitive)."""
    return queries.responses_containing(store, text, limit)


def filter_entries(
    index: ReviewIndex,
    entries: Sequence[QueueEntry],
    queue_filter: QueueFilter,
    reviewer: str,
) -> list[QueueEntry]:
    """The entries that pass ``queue_filter``, in their given order."""
    checks = _entry_checks(index, queue_filter, reviewer)
    # One pass per check over the survivors: at 100k entries a filter applies in a few ms
    # (one Python call per entry and check), where testing every field of every entry took
    # over 50 ms even for "everything".
    if queue_filter.question:  # the usual filter: tested inline, no call per entry
        question = queue_filter.question
        result = [entry for entry in entries if entry.question == question]
    else:
        result = list(entries)
    for check in checks:
        result = [entry for entry in result if check(entry)]
    return result


def _status_check(status: str, reviewer: str) -> Callable[[QueueEntry], bool]:
    def passes(entry: QueueEntry) -> bool:
        state = entry.reviewers.get(reviewer)
        if status == "flagged":
            return bool(state and state.flagged)
        current = state.status if state else "unreviewed"
        if status == "reviewed":
            return current in REVIEWED
        return current == status

    return passes


def _theme_check(index: ReviewIndex, theme: str, reviewer: str) -> Callable[[QueueEntry], bool]:
    proposed = index.with_proposed_theme(theme)

    def passes(entry: QueueEntry) -> bool:
        state = entry.reviewers.get(reviewer)
        if state and state.labels_json:
            return theme in (json.loads(state.labels_json).get("themes") or ())
        return entry.response_id in proposed

    return passes


def _entry_checks(
    index: ReviewIndex, f: QueueFilter, reviewer: str
) -> list[Callable[[QueueEntry], bool]]:
    """One test per part of the filter in force but the question (tested first, inline)."""
    checks: list[Callable[[QueueEntry], bool]] = []
    if f.tag:
        tag = f.tag.lower()
        checks.append(
            lambda entry: bool(entry.tags_json) and tag in (t.lower() for t in entry.tags)
        )
    if f.min_confidence is not None:
        low = f.min_confidence
        checks.append(lambda entry: (entry.confidence or 0.0) >= low)
    if f.max_confidence is not None:
        high = f.max_confidence
        checks.append(lambda entry: (entry.confidence or 0.0) <= high)
    if f.status:
        checks.append(_status_check(f.status, reviewer))
    if f.theme:
        checks.append(_theme_check(index, f.theme, reviewer))
    if f.reviewer:
        name = f.reviewer
        checks.append(lambda entry: name in entry.reviewers)
    if f.disagreement:
        checks.append(lambda entry: entry.disagreement())
    if f.text:
        text_ids = text_matches(index.store, f.text)
        checks.append(lambda entry: entry.response_id in text_ids)
    if f.same is not None:
        same_ids = same_text_matches(index.store, f.same)
        checks.append(lambda entry: entry.response_id in same_ids)
    return checks


def next_unreviewed(
    order: Sequence[QueueEntry],
    reviewer: str,
    start: int = 0,
    wrap: bool = True,
    skip: Container[str] = (),
) -> int | None:
    """Position in ``order`` of the first unreviewed item at or after ``start``.

    Items in ``skip`` (response ids another session is on: coder/leases.py) are passed over,
    and so are answers assigned to other reviewers (coder/assign.py): a reviewer's next item
    is one of theirs or one assigned to nobody. A project without assignments is unaffected.
    """
    count = len(order)
    for offset in range(count if wrap else max(count - start, 0)):
        position = (start + offset) % count
        state = order[position].reviewers.get(reviewer)
        if order[position].assigned_elsewhere(reviewer):
            continue
        if (state is None or state.status == "unreviewed") and (
            not skip or order[position].response_id not in skip
        ):
            return position
    return None
