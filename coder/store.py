"""The project store: one SQLite file per coding project.

Everything that touches the database goes through :class:`Store`, so the TUI, the CLI
and the classifiers share one set of rules: WAL mode and a busy timeout (several
reviewers on one file), proposals and decisions append-only, every label traceable
to a model, prompt hash and codebook version.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from coder import migrations
from coder.errors import NoCodebookError
from schemas import Codebook, Labels, Proposal, Response

DEFAULT_DB = "coder.db"
BUSY_TIMEOUT_MS = 30_000


def now() -> str:
    """Current UTC time as an ISO 8601 string with microseconds (sortable)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def default_db_path() -> Path:
    """``$CODER_DB`` if set, else ``coder.db`` in the current directory."""
    return Path(os.environ.get("CODER_DB") or DEFAULT_DB)


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


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class Store:
    """A coder project file."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.db = Database(_connect(self.path))
        if self.db.journal_mode != "wal":
            self.db.enable_wal()
        # NORMAL is durable in WAL mode across process crashes (only an OS crash can
        # lose the last transactions), and much faster than FULL per commit.
        self.db.execute("PRAGMA synchronous = NORMAL")
        migrations.apply(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- responses ---------------------------------------------------------------
    def add_responses(self, responses: Iterable[Response]) -> tuple[int, int]:
        """Insert responses not yet stored, in one transaction. Returns (added, skipped)."""
        added = skipped = 0
        stamp = now()
        with self.db.atomic():
            existing = {row[0] for row in self.db.execute("select id from responses").fetchall()}
            rows = []
            for response in responses:
                if response.id in existing:
                    skipped += 1
                    continue
                existing.add(response.id)
                rows.append(_response_row(response, stamp))
                added += 1
            if rows:
                self.db.table("responses").insert_all(rows, batch_size=1000)
        return added, skipped

    def response(self, response_id: str) -> Response:
        """One response (KeyError if unknown)."""
        rows = list(self.db.query("select * from responses where id = ?", [response_id]))
        if not rows:
            raise KeyError(response_id)
        return _response_from_row(rows[0])

    def responses(
        self, question: str | None = None, ids: Sequence[str] | None = None
    ) -> Iterator[Response]:
        """All responses in import order, optionally for one question or a set of ids."""
        sql = "select * from responses"
        params: list[Any] = []
        where = []
        if question is not None:
            where.append("question = ?")
            params.append(question)
        if ids is not None:
            where.append("id in (select value from json_each(?))")
            params.append(json.dumps(list(ids)))
        if where:
            sql += " where " + " and ".join(where)
        sql += " order by rowid"
        for row in self.db.query(sql, params):
            yield _response_from_row(row)

    def count_responses(self) -> int:
        return int(self.db.execute("select count(*) from responses").fetchone()[0])

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

    # --- codebooks -----------------------------------------------------------------
    def save_codebook(self, codebook: Codebook, source: str | None = None) -> int:
        """Store a codebook; an unchanged codebook keeps its version. Returns the version."""
        digest = codebook.content_hash()
        row = self.db.execute(
            "select version from codebook_versions where hash = ?", [digest]
        ).fetchone()
        if row:
            return int(row[0])
        with self.db.atomic():
            self.db.table("codebook_versions").insert(
                {
                    "hash": digest,
                    "name": codebook.name,
                    "codebook": codebook.model_dump_json(),
                    "source": source,
                    "created_at": now(),
                }
            )
            version = self.db.execute("select max(version) from codebook_versions").fetchone()[0]
        return int(version)

    def codebook(self, version: int | None = None) -> tuple[int, Codebook]:
        """The given codebook version, or the latest. LookupError if there is none."""
        if version is None:
            row = self.db.execute(
                "select version, codebook from codebook_versions order by version desc limit 1"
            ).fetchone()
        else:
            row = self.db.execute(
                "select version, codebook from codebook_versions where version = ?", [version]
            ).fetchone()
        if not row:
            raise NoCodebookError(
                f"{self.path}: no codebook in this project: run 'coder codebook add FILE' "
                "(or 'coder codebook add --example' for the built-in rapid-insight codebook) "
                "first"
                if version is None
                else f"{self.path}: no codebook version {version}"
            )
        return int(row[0]), Codebook.model_validate_json(row[1])

    def codebook_versions(self) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "select version, hash, name, source, created_at from codebook_versions order by version"
            )
        )

    # --- proposals -----------------------------------------------------------------
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
            "created_at": now(),
        }
        table = self.db.table("proposals")
        table.insert(row)
        return int(table.last_pk)  # type: ignore[arg-type]

    def add_proposals(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append many proposals in one transaction (the embedded backend's batches)."""
        stamp = now()
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
            sql += " where p.response_id in (select value from json_each(?))"
            params.append(json.dumps(list(response_ids)))
        return {row["response_id"]: _proposal_from_row(row) for row in self.db.query(sql, params)}

    def proposal(self, proposal_id: int) -> StoredProposal:
        rows = list(self.db.query("select * from proposals where id = ?", [proposal_id]))
        if not rows:
            raise KeyError(proposal_id)
        return _proposal_from_row(rows[0])

    def proposal_history(self, response_id: str) -> list[StoredProposal]:
        """Every proposal ever made for a response, oldest first (failures included)."""
        return [
            _proposal_from_row(row)
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
        return _proposal_from_row(rows[0]) if rows else None

    # --- decisions -----------------------------------------------------------------
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
                "created_at": now(),
            }
        )
        return int(table.last_pk)  # type: ignore[arg-type]

    def decisions(
        self, response_id: str | None = None, reviewer: str | None = None
    ) -> list[StoredDecision]:
        """Decisions in the order they were made, optionally filtered."""
        sql = "select * from decisions"
        where, params = [], []
        if response_id is not None:
            where.append("response_id = ?")
            params.append(response_id)
        if reviewer is not None:
            where.append("reviewer = ?")
            params.append(reviewer)
        if where:
            sql += " where " + " and ".join(where)
        sql += " order by id"
        return [_decision_from_row(row) for row in self.db.query(sql, params)]

    def final_labels(self, reviewer: str | None = None) -> dict[str, StoredDecision]:
        """Each response's labelling decision in force, after undos.

        Only decisions that carry labels count (accept, correct, adjudicate, bulk
        accept, quote flags). An adjudication outranks every reviewer's decision;
        otherwise the latest one wins. With ``reviewer``, only that reviewer's.
        """
        undone = {
            row[0]
            for row in self.db.execute(
                "select undoes from decisions where undoes is not null"
            ).fetchall()
        }
        result: dict[str, StoredDecision] = {}
        for decision in self.decisions(reviewer=reviewer):
            if decision.id in undone or decision.labels is None or decision.action == "undo":
                continue
            previous = result.get(decision.response_id)
            if previous is not None and previous.action == "adjudicate" and decision.action != "adjudicate":
                continue
            result[decision.response_id] = decision
        return result

    def reviewed_response_ids(self) -> set[str]:
        """Responses with a reviewing decision in force (accept, correct, adjudicate).

        A quote flag alone is not a review: it marks the text, not the labels.
        """
        return {
            row[0]
            for row in self.db.execute(
                """select distinct response_id from decisions
                   where action in ('accept', 'bulk_accept', 'correct', 'adjudicate')
                   and id not in (select undoes from decisions where undoes is not null)"""
            ).fetchall()
        }

    # --- llm calls and eval runs ---------------------------------------------------------
    def log_llm_call(self, **fields: Any) -> int:
        """Record one model call (never the API key)."""
        row = {"created_at": now(), **fields}
        for key in ("request", "response", "response_ids"):
            if key in row and not isinstance(row[key], str | type(None)):
                row[key] = json.dumps(row[key], default=str)
        table = self.db.table("llm_calls")
        table.insert(row, alter=True)
        return int(table.last_pk)  # type: ignore[arg-type]

    def add_eval_run(self, **fields: Any) -> int:
        """Record one eval run with its metrics."""
        row = {"created_at": now(), **fields}
        for key in ("params", "metrics"):
            if key in row and not isinstance(row[key], str):
                row[key] = json.dumps(row[key], default=str)
        table = self.db.table("eval_runs")
        table.insert(row, alter=True)
        return int(table.last_pk)  # type: ignore[arg-type]

    def eval_runs(self) -> list[dict[str, Any]]:
        runs = []
        for row in self.db.query("select * from eval_runs order by id"):
            row = dict(row)
            row["metrics"] = json.loads(row["metrics"]) if row.get("metrics") else {}
            row["params"] = json.loads(row["params"]) if row.get("params") else {}
            runs.append(row)
        return runs


def _response_row(response: Response, stamp: str) -> dict[str, Any]:
    return {
        "id": response.id,
        "text": response.text,
        "question": response.question,
        "respondent": response.respondent,
        "attributes": json.dumps(response.attributes, ensure_ascii=False, default=str),
        "tags": json.dumps(response.tags, ensure_ascii=False),
        "source_file": response.source_file,
        "source_row": response.source_row,
        "imported_at": stamp,
    }


def _response_from_row(row: dict[str, Any]) -> Response:
    return Response(
        id=row["id"],
        text=row["text"],
        question=row["question"],
        respondent=row["respondent"],
        attributes=json.loads(row["attributes"] or "{}"),
        tags=json.loads(row["tags"] or "[]"),
        source_file=row["source_file"],
        source_row=row["source_row"],
    )


def _proposal_from_row(row: dict[str, Any]) -> StoredProposal:
    return StoredProposal(
        id=row["id"],
        response_id=row["response_id"],
        backend=row["backend"],
        model=row["model"],
        model_version=row["model_version"],
        prompt_template_hash=row["prompt_template_hash"],
        system_prompt_hash=row["system_prompt_hash"],
        codebook_version=row["codebook_version"],
        proposal=Proposal.model_validate_json(row["output"]) if row["output"] else None,
        confidence=row["confidence"],
        status=row["status"],
        error=row["error"],
        created_at=row["created_at"],
    )


def _decision_from_row(row: dict[str, Any]) -> StoredDecision:
    return StoredDecision(
        id=row["id"],
        response_id=row["response_id"],
        reviewer=row["reviewer"],
        action=row["action"],
        labels=Labels.model_validate_json(row["labels"]) if row["labels"] else None,
        proposal_id=row["proposal_id"],
        reason_code=row["reason_code"],
        note=row["note"],
        undoes=row["undoes"],
        created_at=row["created_at"],
    )
