"""Columns and cells of an imported table: letters, normalised headers, cell text, the
roles a column can play, and :class:`ColumnPlan` (what the import does with one column)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coder.errors import ImportError_

TEXT_COLUMNS = ("text", "response", "answer", "comment", "comments", "free_text", "feedback")
QUESTION_COLUMNS = ("question", "question_id", "hypothesis", "hypothesis_id", "prompt")
ID_COLUMNS = ("id", "response_id", "comment_id", "uid")
RESPONDENT_COLUMNS = ("respondent", "respondent_id", "participant", "participant_id")


# Microsoft Forms metadata columns: never treated as questions. Email and Name are
# personal data, so they are dropped unless asked for by --attribute.
FORMS_METADATA = ("id", "start time", "completion time", "last modified time")
FORMS_PERSONAL = ("email", "name")


def norm(name: Any) -> str:
    # str.split() splits at the same (Unicode) whitespace as re's \s, several times faster:
    # this runs several times per column, and files may have 40,000 columns.
    return " ".join(str(name or "").split()).lower()


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"  # as JSON writes it (XLSX booleans are text by now)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def shorten(text: Any, width: int = 40) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis (for messages)."""
    value = re.sub(r"\s+", " ", str(text)).strip()
    return value if len(value) <= width else value[: width - 1] + "…"


class JsonNumber(str):
    """A JSON number with a fraction or exponent, or NaN/Infinity, kept as written.

    ``1.50`` would become the float 1.5 and ``NaN`` the text 'nan'; a response, id or
    question is text, so it keeps the spelling of the file. Attributes get the number back
    (:func:`attribute_values`).
    """

    __slots__ = ()

    def number(self) -> float:
        return float(self)


def column_letter(index: int) -> str:
    """Spreadsheet letter of a 0-based column index: 0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def column_index(letters: str) -> int | None:
    """0-based index of a spreadsheet column letter ('A', 'aa'); None if not letters."""
    if not re.fullmatch(r"[A-Za-z]{1,3}", letters):
        return None
    index = 0
    for char in letters.upper():
        index = index * 26 + ord(char) - ord("A") + 1
    return index - 1


def find_column(header: Sequence[str], wanted: str | None, candidates: Sequence[str], path: Path, what: str) -> int | None:
    normalised = [norm(h) for h in header]
    if wanted is not None:
        if norm(wanted) in normalised:
            return normalised.index(norm(wanted))
        raise ImportError_(
            f"{path}: no column {wanted!r} for the {what} (columns: {', '.join(header)})"
        )
    for candidate in candidates:
        if candidate in normalised:
            return normalised.index(candidate)
    return None


@dataclass(frozen=True)
class ColumnPlan:
    """What the import does with one column of the file, and why (shown in the dry run)."""

    letter: str
    header: str
    # question | text | respondent | id | attribute | dropped
    role: str
    # the question id, or the attribute's name; empty for dropped columns
    target: str
    how: str
    similarity: float | None = None
    exact: bool = True
