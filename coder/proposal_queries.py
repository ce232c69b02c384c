"""The proposals part of the store: the classifiers' labels, append-only, with provenance."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from coder.project_file import StorePart
from coder.store_records import StoredProposal, proposal_from_row

if TYPE_CHECKING:
    from schemas import Proposal


class ProposalQueries(StorePart):
    """Proposals and failed attempts (a part of :class:`coder.store.Store`)."""

    def proposal_counts(self) -> tuple[int, int]:
        """(responses with a successful proposal, responses whose every proposal failed)."""
        proposed = self.conn.execute(
            "select count(distinct response_id) from proposals where status = 'ok'"
        ).fetchone()[0]
        failed = self.conn.execute(
            "select count(distinct response_id) from proposals where status = 'failed'"
            " and response_id not in (select response_id from proposals where status = 'ok')"
        ).fetchone()[0]
        return int(proposed), int(failed)

    def ok_proposal_ids(self) -> list[tuple[int, str]]:
        """(proposal id, response id) of every successful proposal, oldest first."""
        sql = "select id, response_id from proposals where status = 'ok' order by id"
        return [(int(pid), rid) for pid, rid in self.db.execute(sql).fetchall()]

    def add_proposal(
        self,
        *,
        response_id: str,
        backend: str,
        model: str,
        proposal: Proposal | None,
        codebook_version: int | None,
        model_version: str | None = None,
        prompt_template_hash: str | None = None,
        system_prompt_hash: str | None = None,
        params: dict[str, Any] | None = None,
        input_hash: str | None = None,
        status: str = "ok",
        error: str | None = None,
        run_id: str | None = None,
    ) -> int:
        """Append one proposal (or a failure record). Committed at once."""
        row = {
            "response_id": response_id,
            "backend": backend,
            "model": model,
            "model_version": model_version,
            "prompt_template_hash": prompt_template_hash,
            "system_prompt_hash": system_prompt_hash,
            "codebook_version": codebook_version,
            "params": json.dumps(params or {}, sort_keys=True),
            "input_hash": input_hash,
            "output": proposal.model_dump_json() if proposal is not None else None,
            "confidence": proposal.confidence if proposal is not None else None,
            "status": status,
            "error": error,
            "run_id": run_id,
            "created_at": self._now(),
        }
        # A plain INSERT in its own transaction: sqlite-utils' insert re-reads the table's
        # columns on every call, a third of the cost of precode's one commit per answer.
        sql = f"insert into proposals ({', '.join(row)}) values ({', '.join('?' * len(row))})"
        with self.db.atomic():
            cursor = self.db.execute(sql, list(row.values()))
        return int(cursor.lastrowid)  # type: ignore[arg-type]

    def add_proposals(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append many proposals in one transaction (the embedded backend's batches)."""
        stamp = self._now()
        prepared = []
        for row in rows:
            proposal = row.pop("proposal")
            prepared.append(
                {
                    "model_version": None,
                    "prompt_template_hash": None,
                    "system_prompt_hash": None,
                    "input_hash": None,
                    "error": None,
                    "run_id": None,
                    "status": "ok",
                    **row,
                    "params": json.dumps(row.get("params") or {}, sort_keys=True),
                    "output": proposal.model_dump_json() if proposal is not None else None,
                    "confidence": proposal.confidence if proposal is not None else None,
                    "created_at": stamp,
                }
            )
        with self.db.atomic():
            self.db.table("proposals").insert_all(prepared, batch_size=500)

    def current_proposals(
        self, response_ids: Sequence[str] | None = None
    ) -> dict[str, StoredProposal]:
        """The latest successful proposal of each response (by insertion order)."""
        sql = """
            select p.* from proposals p
            join (
                select response_id, max(id) as id from proposals
                where status = 'ok' group by response_id
            ) latest on latest.id = p.id
        """
        params: list[Any] = []
        if response_ids is not None:
            # One index probe per response (index on response_id, id): a reader going
            # through a large project batch by batch must not scan every proposal once per
            # batch. '+status' keeps SQLite from choosing the status index, which matches
            # nearly every row (0.25 s a batch of 2,000 at 500,000 proposals, not 0.02 s).
            sql = """
                select p.* from json_each(?) ids join proposals p on p.id = (
                    select max(id) from proposals
                    where response_id = ids.value and +status = 'ok'
                )
            """
            params.append(json.dumps(list(response_ids)))
        return {row["response_id"]: proposal_from_row(row) for row in self._rows(sql, params)}

    def proposal(self, proposal_id: int) -> StoredProposal:
        rows = list(self.db.query("select * from proposals where id = ?", [proposal_id]))
        if not rows:
            raise KeyError(proposal_id)
        return proposal_from_row(rows[0])

    def proposal_history(self, response_id: str) -> list[StoredProposal]:
        """Every proposal ever made for a response, oldest first (failures included)."""
        return [
            proposal_from_row(row)
            for row in self.db.query(
                "select * from proposals where response_id = ? order by id", [response_id]
            )
        ]

    def response_ids_without_proposal(self, *, include_failed: bool = True) -> list[str]:
        """Responses with no successful proposal yet, in import order."""
        del include_failed  # failed attempts never count as done
        return [
            row[0]
            for row in self.db.execute(
                """select id from responses where id not in
                   (select response_id from proposals where status = 'ok') order by rowid"""
            ).fetchall()
        ]

    def cached_proposal(self, input_hash: str) -> StoredProposal | None:
        """A successful proposal made from identical inputs, if any."""
        rows = list(
            self.db.query(
                "select * from proposals where input_hash = ? and status = 'ok' order by id desc limit 1",
                [input_hash],
            )
        )
        return proposal_from_row(rows[0]) if rows else None
