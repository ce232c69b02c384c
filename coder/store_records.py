"""The store's records: the dataclasses read back from its rows and the row conversions.

No SQL here: the query modules (``coder/*_queries.py``) and :class:`coder.store.Store`
turn rows into these records and responses into rows with the functions below.
"""

from __future__ import annotations

import functools
import json
import operator
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schemas import Labels, Proposal, Response

#: A row as the readers give it: sqlite3.Row (the batch readers) or a dict (sqlite-utils).
Row = Mapping[str, Any] | sqlite3.Row


@dataclass(frozen=True)
class StoredProposal:
    """A proposal row with its provenance."""

    id: int
    response_id: str
    backend: str
    model: str
    model_version: str | None
    prompt_template_hash: str | None
    system_prompt_hash: str | None
    codebook_version: int | None
    proposal: Proposal | None
    confidence: float | None
    status: str
    error: str | None
    created_at: str


@dataclass(frozen=True)
class StoredDecision:
    """A decision row."""

    id: int
    response_id: str
    reviewer: str
    action: str
    labels: Labels | None
    proposal_id: int | None
    reason_code: str | None
    note: str | None
    undoes: int | None
    created_at: str


@functools.cache
def _models() -> tuple[type[Labels], type[Proposal], type[Response]]:
    """The Pydantic models the rows are parsed into, imported when first needed: pydantic
    is about 90 ms of start-up, and ``coder status`` counts rows without building records.
    (Cached, because a function-level import per row would cost the batch readers.)"""
    from schemas import Labels, Proposal, Response

    return Labels, Proposal, Response


def shorten_error(error: Exception, width: int = 200) -> str:
    """An exception's message on one line, cut to ``width`` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def attributes_json(attributes: dict[str, Any]) -> str:
    """A response's attributes as stored (JSON, non-ASCII kept)."""
    return json.dumps(attributes, ensure_ascii=False, default=str)


def response_row(
    response: Response, stamp: str, encoded_attributes: str | None = None
) -> dict[str, Any]:
    """The row of ``response`` imported at ``stamp`` (its attributes' JSON, when already
    encoded, passed in: a wide file's answers share theirs)."""
    return {
        "id": response.id,
        "text": response.text,
        "question": response.question,
        "respondent": response.respondent,
        "attributes": (
            encoded_attributes
            if encoded_attributes is not None
            else attributes_json(response.attributes)
        ),
        "tags": json.dumps(response.tags, ensure_ascii=False),
        "source_file": response.source_file,
        "source_row": response.source_row,
        "imported_at": stamp,
    }


def response_from_row(row: Row) -> Response:
    """A responses row as a :class:`Response`."""
    response_model = _models()[2]
    return response_model(
        id=row["id"],
        text=row["text"],
        question=row["question"],
        respondent=row["respondent"],
        attributes=json.loads(row["attributes"] or "{}"),
        tags=json.loads(row["tags"] or "[]"),
        source_file=row["source_file"],
        source_row=row["source_row"],
    )


def _reader(
    record: type, parsed: str, column: str
) -> tuple[Callable[[Row], tuple[Any, ...]], int]:
    """Read a row's columns in the order of ``record``'s fields, in one C call (itemgetter:
    faster than a keyword per field, and the batch readers build many records); the field
    ``parsed`` comes from ``column`` as stored, at the index returned, for the caller to parse.
    """
    names = [item.name for item in fields(record)]
    columns = [column if name == parsed else name for name in names]
    return operator.itemgetter(*columns), names.index(parsed)


_PROPOSAL_VALUES, _PROPOSAL_OUTPUT = _reader(StoredProposal, "proposal", "output")
_DECISION_VALUES, _DECISION_LABELS = _reader(StoredDecision, "labels", "labels")


def proposal_from_row(row: Row) -> StoredProposal:
    """A proposal row as a record; its JSON output parsed into a :class:`Proposal`."""
    values = list(_PROPOSAL_VALUES(row))
    output = values[_PROPOSAL_OUTPUT]
    proposal_model = _models()[1]
    values[_PROPOSAL_OUTPUT] = proposal_model.model_validate_json(output) if output else None
    return StoredProposal(*values)


def decision_from_row(row: Row) -> StoredDecision:
    """A decision row as a record; its JSON labels parsed into :class:`Labels`."""
    values = list(_DECISION_VALUES(row))
    labels = values[_DECISION_LABELS]
    labels_model = _models()[0]
    values[_DECISION_LABELS] = labels_model.model_validate_json(labels) if labels else None
    return StoredDecision(*values)
