"""The decisions part of the store: reviewers' decisions (append-only; an undo is a row)
and the assignment runs that say who reviews what."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from coder.project_file import StorePart, json_list, where_clause
from coder.store_records import StoredDecision, decision_from_row

if TYPE_CHECKING:
    from schemas import Labels


class DecisionQueries(StorePart):
    """Decisions and assignments (a part of :class:`coder.store.Store`)."""

    def count_decisions(self) -> int:
        return int(self.conn.execute("select count(*) from decisions").fetchone()[0])

    def add_decision(
        self,
        *,
        response_id: str,
        reviewer: str,
        action: str,
        labels: Labels | None = None,
        proposal_id: int | None = None,
        reason_code: str | None = None,
        note: str | None = None,
        undoes: int | None = None,
    ) -> int:
        """Append one human decision. Committed at once."""
        table = self.db.table("decisions")
        table.insert(
            {
                "response_id": response_id,
                "reviewer": reviewer,
                "action": action,
                "labels": labels.model_dump_json() if labels is not None else None,
                "proposal_id": proposal_id,
                "reason_code": reason_code,
                "note": note,
                "undoes": undoes,
                "created_at": self._now(),
            }
        )
        return int(table.last_pk)  # type: ignore[arg-type]

    def decisions(
        self,
        response_id: str | None = None,
        reviewer: str | None = None,
        response_ids: Sequence[str] | None = None,
    ) -> list[StoredDecision]:
        """Decisions in the order they were made, optionally filtered."""
        clause, params = where_clause(
            ("response_id = ?", response_id),
            ("response_id in (select value from json_each(?))", json_list(response_ids)),
            ("reviewer = ?", reviewer),
        )
        sql = f"select * from decisions{clause} order by id"
        return [decision_from_row(row) for row in self.db.query(sql, params)]

    def final_labels(
        self, reviewer: str | None = None, response_ids: Sequence[str] | None = None
    ) -> dict[str, StoredDecision]:
        """Each response's labelling decision in force, after undos.

        Only decisions that carry labels count (accept, correct, adjudicate, bulk
        accept, quote flags). An adjudication outranks every reviewer's decision;
        otherwise the latest one wins. With ``reviewer``, only that reviewer's; with
        ``response_ids``, only those responses'.
        """
        rows = self.final_label_rows(reviewer=reviewer, response_ids=response_ids)
        return {response_id: decision_from_row(row) for response_id, row in rows.items()}

    def final_label_rows(
        self, reviewer: str | None = None, response_ids: Sequence[str] | None = None
    ) -> dict[str, sqlite3.Row]:
        """:meth:`final_labels` as the decisions' rows, labels as their stored JSON: the
        rule without building Pydantic records (``coder status`` only counts and compares)."""
        undone = {
            row[0]
            for row in self.conn.execute(
                "select undoes from decisions where undoes is not null"
            ).fetchall()
        }
        clause, params = where_clause(
            ("response_id in (select value from json_each(?))", json_list(response_ids)),
            ("reviewer = ?", reviewer),
        )
        result: dict[str, sqlite3.Row] = {}
        for row in self._rows(f"select * from decisions{clause} order by id", params):
            if row["id"] in undone or not row["labels"] or row["action"] == "undo":
                continue
            previous = result.get(row["response_id"])
            if (
                previous is not None
                and previous["action"] == "adjudicate"
                and row["action"] != "adjudicate"
            ):
                continue
            result[row["response_id"]] = row
        return result

    def reviewed_response_ids(self, response_ids: Sequence[str] | None = None) -> set[str]:
        """Responses with a reviewing decision in force (accept, correct, adjudicate).

        A quote flag alone is not a review: it marks the text, not the labels. With
        ``response_ids``, only those responses are looked at.
        """
        sql = """select distinct response_id from decisions
                 where action in ('accept', 'bulk_accept', 'correct', 'adjudicate')
                 and id not in (select undoes from decisions where undoes is not null)"""
        params: list[Any] = []
        if response_ids is not None:
            sql += " and response_id in (select value from json_each(?))"
            params.append(json.dumps(list(response_ids)))
        return {row[0] for row in self.db.execute(sql, params).fetchall()}

    # --- assignments (coder/assign.py) -----------------------------------------------------
    def add_assignments(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append one assignment run's rows in one transaction (rows are never updated)."""
        with self.db.atomic():
            self.db.table("assignments").insert_all(rows, batch_size=1000)
