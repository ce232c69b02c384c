"""Choosing the quotes a report shows: informative, not repeated, spread across people.

A rapid-insight report quotes a handful of answers per question. Forms exports repeat answers
(a respondent submits twice, or pastes the same sentence under several hypotheses), and many
answers only say "Yes" or "Strongly resonates"; quoting those tells the reader nothing. So a
quote must carry content, must not repeat (or be contained in) a quote already chosen, and
should come from a respondent, role and organisation not yet quoted in the section.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, Generic, TypeVar

from coder.embedded.features import non_answer_reason, stance_only

#: An unflagged answer with fewer content words than this is too thin to quote.
MIN_CONTENT_WORDS = 5
#: Normalised texts at least this similar (difflib ratio) are the same quote.
NEAR_DUPLICATE_RATIO = 0.9

_HASHTAG = re.compile(r"#\w[\w-]*")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Function words and the stance vocabulary: what is left is what the answer is about.
_NOT_CONTENT = frozenset(
    """a an the and or but if so to of in on at by for from with as is are was were be been
    being am it its this that these those there here i me my we our us you your he she they
    them their his her do does did done doing have has had not no yes yeah just very really
    quite also too agree agreed disagree strongly resonates resonate resonated partly
    partially somewhat absolutely definitely totally completely think would could should
    can will may might much more most some any all what which who how when where why""".split()
)

T = TypeVar("T")


def normalise(text: str) -> str:
    """Text for comparing quotes: lower case, hashtags, punctuation and extra spaces removed."""
    return " ".join(_WORD.findall(_HASHTAG.sub(" ", text.lower())))


def content_words(text: str) -> int:
    """How many words of ``text`` carry content (not function or stance words)."""
    return sum(1 for word in normalise(text).split() if word not in _NOT_CONTENT)


def is_duplicate(normalised: str, others: Sequence[str]) -> bool:
    """True when ``normalised`` equals, contains, is contained in or nearly equals another."""
    for other in others:
        if not normalised or not other:
            if normalised == other:
                return True
            continue
        if normalised in other or other in normalised:
            return True
        matcher = SequenceMatcher(None, normalised, other, autojunk=False)
        if matcher.real_quick_ratio() >= NEAR_DUPLICATE_RATIO and (
            matcher.ratio() >= NEAR_DUPLICATE_RATIO
        ):
            return True
    return False


def quotable(text: str, *, flagged: bool = False) -> bool:
    """Whether an answer may be quoted at all.

    Never a stance-only answer ("Yes", "Strongly resonates") or a non-answer; an answer
    the model chose also needs :data:`MIN_CONTENT_WORDS` content words. A reviewer's flag
    waives only the length test: a short, pointed answer can be the right quote.
    """
    if stance_only(text) or non_answer_reason(text) is not None:
        return False
    return flagged or content_words(text) >= MIN_CONTENT_WORDS


@dataclass(frozen=True)
class QuoteKeys(Generic[T]):
    """How :func:`select_quotes` reads a candidate (kept generic so it is testable alone)."""

    text: Callable[[T], str]
    person: Callable[[T], str]
    role: Callable[[T], str | None]
    organisation: Callable[[T], str | None]
    themes: Callable[[T], Sequence[str]]


def select_quotes(candidates: Sequence[T], keys: QuoteKeys[T], limit: int) -> list[T]:
    """Up to ``limit`` candidates, best first, with no two alike.

    ``candidates`` come in order of preference. Each pick is the first remaining candidate
    that is not a duplicate of a chosen quote, preferring in turn: a person not yet quoted,
    a role not yet quoted, an organisation not yet quoted, a theme not yet covered. A person
    is quoted twice only when nobody else is left.
    """
    chosen: list[T] = []
    seen_texts: list[str] = []
    people: set[str] = set()
    roles: set[str] = set()
    organisations: set[str] = set()
    covered: set[str] = set()
    remaining = list(enumerate(candidates))
    while remaining and len(chosen) < limit:

        def preference(entry: tuple[int, T]) -> tuple[bool, bool, bool, bool, int]:
            rank, item = entry
            role, organisation = keys.role(item), keys.organisation(item)
            return (
                keys.person(item) in people,
                role is not None and role.lower() in roles,
                organisation is not None and organisation.lower() in organisations,
                bool(keys.themes(item)) and set(keys.themes(item)) <= covered,
                rank,
            )

        # The most preferred candidate that is not a duplicate of a chosen quote. Checking
        # every candidate for duplicates each round (difflib on each pair) took minutes at
        # 50,000 answers a question; walking in order of preference checks only those ahead
        # of the pick. A duplicate stays one (chosen quotes only grow), so it is dropped.
        remaining.sort(key=preference)
        best: tuple[int, T] | None = None
        duplicates: set[int] = set()
        for entry in remaining:
            if is_duplicate(normalise(keys.text(entry[1])), seen_texts):
                duplicates.add(entry[0])
                continue
            best = entry
            break
        remaining = [
            entry
            for entry in remaining
            if entry[0] not in duplicates and (best is None or entry[0] != best[0])
        ]
        if best is None:
            break
        item = best[1]
        chosen.append(item)
        seen_texts.append(normalise(keys.text(item)))
        people.add(keys.person(item))
        role, organisation = keys.role(item), keys.organisation(item)
        if role:
            roles.add(role.lower())
        if organisation:
            organisations.add(organisation.lower())
        covered.update(keys.themes(item))
    return chosen


#: Candidates a :class:`QuotePool` keeps per group (one role and organisation).
POOL_PER_GROUP = 8

Rank = tuple[Any, ...]


class QuotePool(Generic[T]):
    """The best-ranked quote candidates of each group, so a report of 500,000 answers holds a
    few candidates per group instead of every answer.

    A group is every candidate with the same role and organisation (callers may group more
    finely), which :func:`select_quotes` prefers alike. Within a group a worse-ranked
    candidate is only ever picked when every better one is already chosen, a duplicate of a
    chosen quote, from a person already quoted or only about themes already covered; so the
    best few are enough, and :func:`select_from_pool` checks that they were.
    ``per_group=None`` keeps every candidate.
    """

    def __init__(self, per_group: int | None = POOL_PER_GROUP) -> None:
        self.per_group = per_group
        self._groups: dict[Hashable, list[tuple[Rank, T]]] = {}
        self._overflowed: set[Hashable] = set()

    def __bool__(self) -> bool:
        return bool(self._groups)

    def has_room(self, group: Hashable, rank: Rank) -> bool:
        """Whether a candidate ranked ``rank`` would be kept (checked before the costly
        :func:`quotable`). A candidate turned away marks its group as overflowed."""
        kept = self._groups.get(group)
        if self.per_group is None or kept is None or len(kept) < self.per_group:
            return True
        if rank < kept[-1][0]:
            return True
        self._overflowed.add(group)
        return False

    def add(self, group: Hashable, rank: Rank, item: T) -> None:
        """Keep ``item``; ranks must be unique (end them with the answer's position)."""
        kept = self._groups.setdefault(group, [])
        bisect.insort(kept, (rank, item), key=lambda entry: entry[0])
        if self.per_group is not None and len(kept) > self.per_group:
            kept.pop()
            self._overflowed.add(group)

    def ranked(self) -> list[T]:
        """Every kept candidate, best first."""
        entries = [entry for kept in self._groups.values() for entry in kept]
        return [item for _, item in sorted(entries, key=lambda entry: entry[0])]

    def overflowed(self) -> list[list[T]]:
        """The kept candidates of each group that turned some candidate away."""
        return [[item for _, item in self._groups[group]] for group in self._overflowed]


def select_from_pool(pool: QuotePool[T], keys: QuoteKeys[T], limit: int) -> list[T] | None:
    """:func:`select_quotes` over the pool, or None when the pool cannot prove that the
    candidates it turned away would not have been chosen (then read them all again).

    Before each pick, every overflowed group must still hold a candidate that is not
    chosen, not a duplicate of a chosen quote, from a person not yet quoted and about a
    theme not yet covered: that one is preferred to everything its group turned away (same
    role and organisation, better rank), so the pick is the one the full list gives.
    """
    chosen = select_quotes(pool.ranked(), keys, limit)
    groups = pool.overflowed()
    if not groups:
        return chosen
    picks = len(chosen) + (1 if len(chosen) < limit else 0)
    for before in range(picks):
        earlier = chosen[:before]
        chosen_ids = {id(item) for item in earlier}
        people = {keys.person(item) for item in earlier}
        covered = {theme for item in earlier for theme in keys.themes(item)}
        seen = [normalise(keys.text(item)) for item in earlier]
        for kept in groups:
            if not any(
                id(item) not in chosen_ids
                and keys.person(item) not in people
                and not (keys.themes(item) and set(keys.themes(item)) <= covered)
                and not is_duplicate(normalise(keys.text(item)), seen)
                for item in kept
            ):
                return None
    return chosen
