"""The responses part of the store: importing answers and reading them back."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from coder.project_file import StorePart, json_list, where_clause
from coder.store_records import attributes_json, response_from_row, response_row

if TYPE_CHECKING:
    from schemas import Response


class ResponseQueries(StorePart):
    """Responses and their imports (a part of :class:`coder.store.Store`)."""

    def add_responses(self, responses: Iterable[Response]) -> tuple[int, int]:
        """Insert responses not yet stored, in one transaction. Returns (added, skipped)."""
        added = skipped = 0
        stamp = self._now()
        with self.db.atomic():
            existing = {row[0] for row in self.db.execute("select id from responses").fetchall()}
            rows = []
            # A wide file's answers from one row come one after another with equal
            # attributes; comparing is far cheaper than serialising again (40k columns).
            last: tuple[dict[str, Any], str] = ({}, "{}")
            for response in responses:
                if response.id in existing:
                    skipped += 1
                    continue
                existing.add(response.id)
                if response.attributes != last[0]:
                    last = (response.attributes, attributes_json(response.attributes))
                rows.append(response_row(response, stamp, last[1]))
                added += 1
            if rows:
                self.db.table("responses").insert_all(rows, batch_size=1000)
        return added, skipped

    def response(self, response_id: str) -> Response:
        """One response (KeyError if unknown)."""
        rows = list(self.db.query("select * from responses where id = ?", [response_id]))
        if not rows:
            raise KeyError(response_id)
        return response_from_row(rows[0])

    def responses(
        self, question: str | None = None, ids: Sequence[str] | None = None
    ) -> Iterator[Response]:
        """All responses in import order, optionally for one question or a set of ids."""
        clause, params = where_clause(
            ("question = ?", question),
            ("id in (select value from json_each(?))", json_list(ids)),
        )
        sql = f"select * from responses{clause} order by rowid"
        for row in self.db.query(sql, params):
            yield response_from_row(row)

    def count_responses(self) -> int:
        return int(self.conn.execute("select count(*) from responses").fetchone()[0])

    def responses_by_question(self) -> dict[str, int]:
        """How many responses each question has ('(none)' for none), by question id."""
        sql = "select coalesce(question, '(none)'), count(*) from responses group by 1 order by 1"
        return dict(self.conn.execute(sql).fetchall())

    def response_batches(self, size: int = 2000) -> Iterator[list[Response]]:
        """All responses in import order, ``size`` at a time (keyset paging on rowid), so a
        reader of a large project holds one batch, not the project."""
        after = 0
        while True:
            rows = self._rows(
                "select rowid as _rowid, * from responses where rowid > ? order by rowid limit ?",
                [after, size],
            )
            if not rows:
                return
            after = rows[-1]["_rowid"]
            yield [response_from_row(row) for row in rows]

    def has_question(self, question: str) -> bool:
        """Whether any response answers ``question`` (stops at the first one)."""
        sql = "select 1 from responses where question = ? limit 1"
        return self.db.execute(sql, [question]).fetchone() is not None

    def question_counts(self) -> list[tuple[str | None, int]]:
        """(question, number of responses) for each question, in order of first import."""
        return [
            (row[0], int(row[1]))
            for row in self.db.execute(
                "select question, count(*) from responses group by question order by min(rowid)"
            ).fetchall()
        ]

    def responses_at(self, question: str | None, positions: Sequence[int]) -> list[Response]:
        """The responses to ``question`` at these 0-based positions of its import order (a
        sample drawn from counts, without reading every response)."""
        rows = self.db.query(
            """select * from (
                   select r.*, row_number() over (order by r.rowid) - 1 as _position
                   from responses r where r.question is ?
               ) where _position in (select value from json_each(?)) order by _position""",
            [question, json.dumps([int(position) for position in positions])],
        )
        return [response_from_row(row) for row in rows]

    def attribute_names(self) -> list[str]:
        """Every attribute name the responses carry, in the order first met (row, then key)."""
        return [
            row[0]
            for row in self.db.execute(
                """select j.key from responses r, json_each(r.attributes) j
                   where r.attributes is not null and json_valid(r.attributes)
                   group by j.key order by min(printf('%015d%010d', r.rowid, j.id))"""
            ).fetchall()
        ]

    def response_keys_from_file(
        self, source_file: str
    ) -> list[tuple[int | None, str | None, str, str | None]]:
        """(source_row, respondent, text, question) of every response imported from a file
        of this name: what the importer compares to spot a re-import under other ids."""
        return [
            (row[0], row[1], row[2], row[3])
            for row in self.db.execute(
                "select source_row, respondent, text, question from responses where source_file = ?",
                [source_file],
            ).fetchall()
        ]

    def imports_of_file_hash(self, file_hash: str) -> list[dict[str, Any]]:
        """Earlier imports of a file with this content hash, oldest first."""
        return list(
            self.db.query(
                "select id, source_file, shape, mapping, created_at from imports where file_hash = ? order by id",
                [file_hash],
            )
        )
