"""The coded-response rows: one flat row per response, as the export and the report's last
sheet hold them (the columns, the row of one response, and cell values).

Here, inside the report package, so that :mod:`coder.export` builds on the report package
and the report never needs the export module (no import cycle between them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from coder.report.coded import CodedResponse, iter_coded
from coder.store import Store

#: Column order of every export (attribute columns ``attr.<name>`` follow ``tags``).
COLUMNS = [
    "response_id",
    "question",
    "text",
    "respondent",
    "tags",
    "label_source",
    "stance",
    "relevant",
    "relevance_reason",
    "themes",
    "quote",
    "reviewer",
    "decision_action",
    "decided_at",
    "proposal_backend",
    "proposal_model",
    "proposal_codebook_version",
    "proposal_question",
    "proposal_stance",
    "proposal_relevant",
    "proposal_themes",
    "proposal_suggested_themes",
    "confidence",
    "proposed_at",
    "notes",
    "source_file",
    "source_row",
]


def export_row(coded: CodedResponse) -> dict[str, Any]:
    """One response as a flat dict; list values stay lists (CSV/XLSX join them)."""
    response, labels = coded.response, coded.labels
    stored = coded.proposal
    proposal = stored.proposal if stored is not None else None
    row: dict[str, Any] = {
        "response_id": response.id,
        "question": coded.question if labels is not None else response.question,
        "text": response.text,
        "respondent": response.respondent,
        "tags": list(response.tags),
        "label_source": coded.source,
        "stance": labels.stance if labels else None,
        "relevant": labels.relevant if labels else None,
        "relevance_reason": labels.relevance_reason if labels else None,
        "themes": list(labels.themes) if labels else [],
        "quote": labels.quote if labels else False,
        "reviewer": coded.decision.reviewer if coded.decision else None,
        "decision_action": coded.decision.action if coded.decision else None,
        "decided_at": coded.decision.created_at if coded.decision else None,
        "proposal_backend": stored.backend if stored else None,
        "proposal_model": stored.model if stored else None,
        "proposal_codebook_version": stored.codebook_version if stored else None,
        "proposal_question": proposal.question if proposal else None,
        "proposal_stance": proposal.stance if proposal else None,
        "proposal_relevant": proposal.relevant if proposal else None,
        "proposal_themes": list(proposal.theme_codes) if proposal else [],
        "proposal_suggested_themes": [s.label for s in proposal.suggested_themes]
        if proposal
        else [],
        "confidence": stored.confidence if stored else None,
        "proposed_at": stored.created_at if stored else None,
        "notes": list(coded.notes),
        "source_file": response.source_file,
        "source_row": response.source_row,
    }
    for key, value in response.attributes.items():
        row[f"attr.{key}"] = value
    return row


def iter_export_rows(store: Store) -> Iterator[dict[str, Any]]:
    """Every response, in import order, as export rows, read a batch at a time."""
    return (export_row(coded) for coded in iter_coded(store))


def export_rows(store: Store) -> list[dict[str, Any]]:
    """Every response, in import order, as export rows (all in memory: small projects)."""
    return list(iter_export_rows(store))


def _with_attributes(attributes: Iterable[str]) -> list[str]:
    at = COLUMNS.index("tags") + 1
    return COLUMNS[:at] + list(attributes) + COLUMNS[at:]


def columns_for(rows: list[dict[str, Any]]) -> list[str]:
    """The fixed columns with the attribute columns inserted after ``tags``."""
    return _with_attributes(
        dict.fromkeys(key for row in rows for key in row if key.startswith("attr."))
    )


def export_columns(store: Store) -> list[str]:
    """:func:`columns_for` every response of the project, asked of the store (no rows read)."""
    return _with_attributes(f"attr.{name}" for name in store.attribute_names())


def flat_value(value: Any) -> Any:
    """A cell value: lists joined with '; ', dicts as JSON, None as empty."""
    if value.__class__ is str:
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(str(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value
