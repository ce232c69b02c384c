"""Matching a column header (or a question value) to a codebook question: exactly, then
tolerantly (normalised text, containment, word similarity), saying how."""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from typing import Any, Literal

from coder.importer.columns import norm
from schemas import Codebook

QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
                        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
                        "\u2013": "-", "\u2014": "-", "\u00a0": " "})


NUMBER_PREFIX = re.compile(r"^(?:hypothesis|question|h|q)\s*(\d+)\b")
PUNCTUATION = re.compile(r"[^\w\s]|_")
ENUMERATION = re.compile(r"^(?:(?:hypothesis|question|h|q)\s*)?\d+\s*[.):\-]\s*")


# Word-level similarity a header must reach to be taken as a question whose text it nearly
# repeats. Between the built-in codebook's ten question texts the highest is 0.23, while a
# header that differs by a word or two from its question scores above 0.95, so 0.8 leaves a
# wide margin both ways. A runner-up within MARGIN of the best makes the match ambiguous.
SIMILAR_WORDS = 0.8
SIMILAR_MARGIN = 0.1


# Headers shorter than this (after normalising) are names, not question texts: they are
# matched only exactly (id, short name, number), never by containment or similarity.
LONG_HEADER = 30
MatchHow = Literal[
    "id", "short name", "exact text", "number", "normalised text", "contains question text",
    "part of question text", "similar words",
]


EXACT_HOWS = ("id", "short name", "exact text", "number")


@dataclass(frozen=True)
class HeaderMatch:
    """The outcome of matching one header (or question value) to the codebook's questions.

    ``question_id`` is None when nothing matched or the match was ambiguous; ``note``
    then says why (it names the candidates), so the import can warn instead of guessing.
    """

    question_id: str | None
    how: str = ""
    similarity: float | None = None
    note: str = ""

    @property
    def exact(self) -> bool:
        return self.how in EXACT_HOWS


def normalise_text(text: Any) -> str:
    """Text for tolerant comparison: lower case, straight quotes, no punctuation or
    enumeration prefix ('1.', 'Hypothesis 2:'), single spaces."""
    return _normalise_text(text if type(text) is str else str(text or ""))


@functools.lru_cache(maxsize=1 << 16)
def _normalise_text(text: str) -> str:
    # Memoised: each header is normalised by several checks (question match, role and
    # organisation names, free text), and question values repeat on every row.
    value = ENUMERATION.sub("", norm(text).translate(QUOTES))
    return " ".join(PUNCTUATION.sub(" ", value).split())


def match_question(header: str, codebook: Codebook | None) -> str | None:
    """Map a column header (or question value) to a codebook question id, if it is one."""
    return match_question_header(header, codebook).question_id


def match_question_header(header: str, codebook: Codebook | None) -> HeaderMatch:
    """Match a header to a codebook question, saying how (see :data:`EXACT_HOWS`).

    In order: the id, short name or full text exactly; then, for a header as long as a
    question text, the normalised text (case, spacing, punctuation, quotes), containment,
    and word-level similarity (difflib on words, at least :data:`SIMILAR_WORDS`, refused
    when two questions come close); last the number of 'Hypothesis 1' / 'H1' / 'Q10 ...'.
    """
    if codebook is None or not codebook.questions:
        return HeaderMatch(None)
    # Question values repeat on every row of a long file, so the matching is memoised
    # on the (immutable) question list.
    return _match_header(header, _question_key(codebook))


_LAST_QUESTIONS: list[Any] = [None, ()]


def _question_key(codebook: Codebook) -> tuple[tuple[str, str | None, str], ...]:
    """(id, short name, text) of each question, hashable; rebuilt only for another codebook
    (a wide file asks once per column)."""
    if _LAST_QUESTIONS[0] is not codebook.questions:
        _LAST_QUESTIONS[:] = [codebook.questions, tuple((q.id, q.short_name, q.text) for q in codebook.questions)]
    key: tuple[tuple[str, str | None, str], ...] = _LAST_QUESTIONS[1]
    return key


@functools.lru_cache(maxsize=64)
def _exact_names(questions: tuple[tuple[str, str | None, str], ...]) -> dict[str, HeaderMatch]:
    """Normalised id, short name and text of each question -> its match, first one winning
    (as the question-by-question comparison did). Built once per codebook: normalising
    every question again for each header made a 40,000-column file take over a minute."""
    names: dict[str, HeaderMatch] = {}
    for qid, short_name, qtext in questions:
        names.setdefault(norm(qid), HeaderMatch(qid, "id"))
        if short_name:
            names.setdefault(norm(short_name), HeaderMatch(qid, "short name"))
        names.setdefault(norm(qtext), HeaderMatch(qid, "exact text"))
    names.pop("", None)
    return names


@functools.lru_cache(maxsize=4096)
def _match_header(header: str, questions: tuple[tuple[str, str | None, str], ...]) -> HeaderMatch:
    text = norm(header)
    if not text:
        return HeaderMatch(None)
    exact = _exact_names(questions).get(text)
    if exact is not None:
        return exact
    by_number: str | None = None
    number = NUMBER_PREFIX.match(text)
    if number:
        for qid, _, _ in questions:
            if re.fullmatch(rf"[a-z]*{number.group(1)}", norm(qid)):
                by_number = qid
                break
    by_text = _match_text(normalise_text(header), questions)
    if by_text.question_id is None:
        if by_number is not None:
            return HeaderMatch(by_number, "number")
        return by_text
    if by_number is not None and by_number != by_text.question_id:
        return HeaderMatch(
            None, note=f"its number says {by_number} but its text is {by_text.question_id}'s "
            f"({by_text.how})",
        )
    return by_text


def _match_text(body: str, questions: tuple[tuple[str, str | None, str], ...]) -> HeaderMatch:
    if len(body) < LONG_HEADER:
        return HeaderMatch(None)
    texts = [(qid, normalise_text(qtext)) for qid, _, qtext in questions]
    same = [qid for qid, qtext in texts if body == qtext]
    if len(same) == 1:
        return HeaderMatch(same[0], "normalised text")
    inside = [qid for qid, qtext in texts if body in qtext]
    around = [qid for qid, qtext in texts if qtext and qtext in body]
    if len(around) == 1:
        return HeaderMatch(around[0], "contains question text")
    if len(inside) == 1:
        return HeaderMatch(inside[0], "part of question text")
    if len(inside) > 1:
        return HeaderMatch(None, note=f"its text is part of several questions ({', '.join(inside)})")
    words = body.split()
    scores = sorted(
        ((difflib.SequenceMatcher(None, words, qtext.split(), autojunk=False).ratio(), qid)
         for qid, qtext in texts),
        reverse=True,
    )
    best, best_id = scores[0]
    if best < SIMILAR_WORDS:
        return HeaderMatch(None, note=f"closest question {best_id} is only {best:.2f} similar")
    if len(scores) > 1 and scores[1][0] > best - SIMILAR_MARGIN:
        return HeaderMatch(
            None, note=f"it is as similar to {best_id} ({best:.2f}) as to {scores[1][1]} ({scores[1][0]:.2f})"
        )
    return HeaderMatch(best_id, "similar words", round(best, 3))
