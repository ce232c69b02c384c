"""Turning a cell into a response: stable ids, hashtags, and the check of a row's question."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from coder.errors import ImportError_
from coder.importer.columns import cell_text, column_letter, norm
from coder.importer.headers import match_question
from coder.importer.model import Table
from schemas import Codebook, Response

HASHTAG = re.compile(r"(?<![\w&])#([A-Za-z][\w-]*\w|[A-Za-z])")


def extract_tags(text: str) -> list[str]:
    """Hashtags in ``text`` (without '#', first occurrence order, no duplicates)."""
    seen: dict[str, None] = {}
    for match in HASHTAG.finditer(text or ""):
        seen.setdefault(match.group(1), None)
    return list(seen)


def stable_id(source: Path, row: int, question: str | None) -> str:
    """Id for a response without an id column: hash of file name + row + question."""
    key = f"{source.name}\x1f{row}\x1f{question or ''}"
    return "r_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def check_case_variants(path: Path, table: Table, index: int) -> None:
    """Refuse question values that differ only in case or spacing ('H1' and 'h1').

    They would be merged into one question (with a codebook) or kept as two (without), and
    either may be wrong: the file must say which it means.
    """
    first: dict[str, tuple[str, int]] = {}
    for number, row in table.rows:
        value = cell_text(row[index]).strip()
        if not value:
            continue
        key = norm(value)
        seen = first.setdefault(key, (value, number))
        if seen[0] != value:
            raise ImportError_(
                f"{path}: row {number}, column {column_letter(index)} {table.header[index]!r}: "
                f"question {value!r} differs only in case or spacing from {seen[0]!r} (row "
                f"{seen[1]}); write each question the same way throughout the file"
            )


def check_question(
    value: str | None, codebook: Codebook | None, allow_unknown: bool, path: Path, row: int, field: str
) -> str | None:
    """The codebook's id for a row's question value (None for an empty one); see :func:`unknown_question`."""
    if not value:
        return None
    if codebook is None or not codebook.questions:
        return value
    matched = match_question(value, codebook)
    if matched:
        return matched
    return unknown_question(value, allow_unknown, (
        f"{path}: row {row}, field {field!r}: question {value!r} is not in the codebook "
        f"(known: {', '.join(codebook.question_ids)})"
    ))


def unknown_question(qid: str, allow_unknown: bool, problem: str) -> str:
    """A question id the codebook lacks: kept with ``--allow-unknown-questions``, else refused
    with ``problem`` (which names the file, row or option) and the way to keep it."""
    if allow_unknown:
        return qid
    raise ImportError_(f"{problem}; pass --allow-unknown-questions to keep it")


def new_response(
    path: Path, row: int, response_id: str | None, text: str, question: str | None,
    respondent: str | None, attributes: dict[str, Any],
) -> Response:
    """The response of one answer cell; without an id of its own it gets :func:`stable_id`."""
    return Response(
        id=response_id or stable_id(path, row, question),
        text=text,
        question=question,
        respondent=respondent,
        attributes=attributes,
        tags=extract_tags(text),
        source_file=str(path.name),
        source_row=row,
    )
