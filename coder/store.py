"""The project store: one SQLite file per coding project.

Everything that touches the database goes through :class:`Store`, so the TUI, the CLI
and the classifiers share one set of rules: WAL mode and a busy timeout (several
reviewers on one file), proposals and decisions append-only, every label traceable
to a model, prompt hash and codebook version.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from coder import migrations
from coder.errors import CoderError, NoCodebookError
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


class ProjectFileError(CoderError):
    """The project file cannot be used as it is: unreadable, damaged, read-only for a
    write, locked, or written by a newer coder. Nothing was changed."""


def describe_sqlite_error(path: Path | str, error: sqlite3.Error) -> str:
    """A message a user can act on for an SQLite error on the project file ``path``."""
    text = str(error)
    lowered = text.lower()
    if "readonly" in lowered or "read-only" in lowered:
        return (f"{path}: the project file (or its folder) is read-only, so nothing can be written; "
                "commands that only read it still work. Make it writable, or copy it to a "
                "writable folder")
    if "locked" in lowered or "busy" in lowered:
        return (f"{path}: the project is locked by another coder process (precode, train or "
                f"review) that held it for more than {BUSY_TIMEOUT_MS // 1000} s; try again when it "
                "has finished")
    if "full" in lowered:
        return f"{path}: the disk is full; nothing was written. Free some space and run the command again"
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return (f"{path}: the project file is damaged or not an SQLite database ({text}); nothing "
                "was changed. Run 'coder doctor --db FILE', and restore it from a backup or "
                "recover what is readable with 'sqlite3 FILE .recover'")
    if "unable to open" in lowered:
        return (f"{path}: cannot open or create the project file ({text}); check that the folder "
                "exists and is writable")
    return f"{path}: SQLite error on the project file: {text}"


class _ProjectDatabase(Database):
    """A sqlite-utils Database whose transactions take the write lock when they begin.

    With a deferred ``BEGIN``, a transaction that reads and then writes cannot wait for
    another writer: in WAL mode SQLite fails its first write at once with "database is
    locked" (its snapshot is stale), so the busy timeout never applies, and ``coder
    import`` failed while precode or train was writing. ``BEGIN IMMEDIATE`` waits (up to
    the busy timeout) for the lock first. Nested blocks stay savepoints. On a read-only
    project any write transaction is refused with a clear message before it starts.
    """

    read_only = False
    label = ""

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Database]:  # type: ignore[override]
        if self.conn.in_transaction:
            with super().atomic():
                yield self
            return
        if self.read_only:
            raise ProjectFileError(
                describe_sqlite_error(self.label, sqlite3.OperationalError("readonly"))
            )
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                self.rollback()
                raise


def _connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        # In a folder coder cannot write, SQLite cannot create the WAL's shared-memory file
        # that a WAL reader needs; nobody can write the file there either, so it is
        # opened as immutable.
        if not os.access(path.parent, os.W_OK) and not Path(f"{path}-shm").exists():
            uri += "&immutable=1"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    else:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _writable(path: Path) -> bool:
    """Whether coder can write the project: the file, and the folder for SQLite's WAL files
    (unless they exist and are writable)."""
    if not path.exists():
        return True  # to be created; a folder that refuses it gives a clear error
    if not os.access(path, os.W_OK):
        return False
    if os.access(path.parent, os.W_OK):
        return True
    return all(os.access(f"{path}{suffix}", os.W_OK) for suffix in ("-wal", "-shm"))


def schema_number(name: str) -> int:
    """The number of a migration name ('m004_embedded_models' -> 4); 0 if it has none."""
    digits = "".join(ch for ch in name.split("_", 1)[0] if ch.isdigit())
    return int(digits) if digits else 0


class Store:
    """A coder project file.

    Opening checks the file before anything is written: not a coder project (another
    SQLite database), damaged, or from a newer coder (a migration this coder does not
    know) raise :class:`ProjectFileError`. A file (or folder) coder cannot write is
    opened read-only: reads work, and any write raises :class:`ProjectFileError`.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.read_only = not _writable(self.path)
        try:
            conn = _connect(self.path, self.read_only)
        except sqlite3.Error as error:
            raise ProjectFileError(describe_sqlite_error(self.path, error)) from None
        self.db = _ProjectDatabase(conn)
        self.db.read_only = self.read_only
        self.db.label = str(self.path)
        try:
            self._check_schema()
            if not self.read_only:
                if self.db.journal_mode != "wal":
                    self.db.enable_wal()
                # NORMAL is durable in WAL mode across process crashes (only an OS crash can
                # lose the last transactions), and much faster than FULL per commit.
                self.db.execute("PRAGMA synchronous = NORMAL")
                migrations.apply(self.db)
        except sqlite3.Error as error:
            conn.close()
            raise ProjectFileError(describe_sqlite_error(self.path, error)) from None
        except BaseException:
            conn.close()
            raise

    def _check_schema(self) -> None:
        """Refuse, before any write, a file this coder must not migrate or cannot read."""
        tables = {row[0] for row in self.db.execute(
            "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
        ).fetchall()}
        applied: list[str] = []
        if migrations.migrations.migrations_table in tables:
            applied = [row[0] for row in self.db.execute(
                f"select name from [{migrations.migrations.migrations_table}] where migration_set = ?",
                [migrations.migrations.name],
            ).fetchall()]
        if tables and not applied:
            raise ProjectFileError(
                f"{self.path}: an SQLite database, but not a coder project (it holds the tables "
                f"{', '.join(sorted(tables)[:8])}); nothing was changed. Give another --db"
            )
        known = migrations.names()
        # Migrations are applied by name, so their order in the file need not be numeric.
        newest = max(known, key=schema_number)
        unknown = [name for name in applied if name not in known]
        if unknown:
            theirs = max(applied, key=schema_number)
            raise ProjectFileError(
                f"{self.path}: this project has schema version {schema_number(theirs)} ({theirs}), "
                f"written by a newer coder; this coder knows schema version "
                f"{schema_number(newest)} ({newest}). Nothing was changed: upgrade coder to "
                "open it"
            )
        pending = [name for name in known if name not in applied]
        if self.read_only and pending and tables:
            raise ProjectFileError(
                f"{self.path}: the project file is read-only and has schema version "
                f"{schema_number(max(applied, key=schema_number))}; this coder needs version "
                f"{schema_number(newest)}, which means writing to it. Make it writable (or copy "
                "it to a writable folder) and run the command again"
            )
        if self.read_only and not tables:
            raise ProjectFileError(
                f"{self.path}: the file is empty and read-only, so it cannot become a project"
            )

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
            # A wide file's answers from one row come one after another with equal
            # attributes; comparing is far cheaper than serialising again (40k columns).
            last: tuple[dict[str, Any], str] = ({}, "{}")
            for response in responses:
                if response.id in existing:
                    skipped += 1
                    continue
                existing.add(response.id)
                if response.attributes != last[0]:
                    last = (response.attributes, _attributes_json(response.attributes))
                rows.append(_response_row(response, stamp, last[1]))
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

    def count_decisions(self) -> int:
        return int(self.db.execute("select count(*) from decisions").fetchone()[0])

    def proposal_counts(self) -> tuple[int, int]:
        """(responses with a successful proposal, responses whose every proposal failed)."""
        proposed = self.db.execute(
            "select count(distinct response_id) from proposals where status = 'ok'"
        ).fetchone()[0]
        failed = self.db.execute(
            "select count(distinct response_id) from proposals where status = 'failed'"
            " and response_id not in (select response_id from proposals where status = 'ok')"
        ).fetchone()[0]
        return int(proposed), int(failed)

    def responses_by_question(self) -> dict[str, int]:
        """How many responses each question has ('(none)' for none), by question id."""
        sql = "select coalesce(question, '(none)'), count(*) from responses group by 1 order by 1"
        return dict(self.db.execute(sql).fetchall())

    def ok_proposal_ids(self) -> list[tuple[int, str]]:
        """(proposal id, response id) of every successful proposal, oldest first."""
        sql = "select id, response_id from proposals where status = 'ok' order by id"
        return [(int(pid), rid) for pid, rid in self.db.execute(sql).fetchall()]

    def _rows(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        """Rows addressable by column name, built in C (sqlite3.Row): the batch readers of a
        large project spent a fifth of their time building one dict per row."""
        cursor = self.db.conn.cursor()
        cursor.row_factory = sqlite3.Row
        try:
            return cursor.execute(sql, params).fetchall()
        finally:
            cursor.close()

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
            yield [_response_from_row(row) for row in rows]

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
        return [_response_from_row(row) for row in rows]

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
        try:
            return int(row[0]), Codebook.model_validate_json(row[1])
        except ValueError as error:  # pydantic's ValidationError: the row was altered
            raise ProjectFileError(
                f"{self.path}: table codebook_versions, version {row[0]}, field 'codebook': not a "
                f"valid codebook ({shorten_error(error)}); add the codebook again with 'coder "
                "codebook add FILE'"
            ) from None

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
        return {row["response_id"]: _proposal_from_row(row) for row in self._rows(sql, params)}

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
        self,
        response_id: str | None = None,
        reviewer: str | None = None,
        response_ids: Sequence[str] | None = None,
    ) -> list[StoredDecision]:
        """Decisions in the order they were made, optionally filtered."""
        sql = "select * from decisions"
        where, params = [], []
        if response_id is not None:
            where.append("response_id = ?")
            params.append(response_id)
        if response_ids is not None:
            where.append("response_id in (select value from json_each(?))")
            params.append(json.dumps(list(response_ids)))
        if reviewer is not None:
            where.append("reviewer = ?")
            params.append(reviewer)
        if where:
            sql += " where " + " and ".join(where)
        sql += " order by id"
        return [_decision_from_row(row) for row in self.db.query(sql, params)]

    def final_labels(
        self, reviewer: str | None = None, response_ids: Sequence[str] | None = None
    ) -> dict[str, StoredDecision]:
        """Each response's labelling decision in force, after undos.

        Only decisions that carry labels count (accept, correct, adjudicate, bulk
        accept, quote flags). An adjudication outranks every reviewer's decision;
        otherwise the latest one wins. With ``reviewer``, only that reviewer's; with
        ``response_ids``, only those responses'.
        """
        undone = {
            row[0]
            for row in self.db.execute(
                "select undoes from decisions where undoes is not null"
            ).fetchall()
        }
        result: dict[str, StoredDecision] = {}
        for decision in self.decisions(reviewer=reviewer, response_ids=response_ids):
            if decision.id in undone or decision.labels is None or decision.action == "undo":
                continue
            previous = result.get(decision.response_id)
            if previous is not None and previous.action == "adjudicate" and decision.action != "adjudicate":
                continue
            result[decision.response_id] = decision
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

    # --- fine-tuned encoders -------------------------------------------------------------
    def save_encoder(
        self,
        name: str,
        onnx: bytes,
        *,
        sha256: str,
        quantized: bool,
        base: str,
        params: dict[str, Any],
        metrics: dict[str, Any],
    ) -> None:
        """Store a fine-tuned encoder's ONNX bytes (kept once per name: rows never change)."""
        with self.db.conn:
            self.db.table("encoders").insert(
                {
                    "name": name,
                    "base": base,
                    "sha256": sha256,
                    "quantized": int(quantized),
                    "params": json.dumps(params, sort_keys=True, default=str),
                    "metrics": json.dumps(metrics, sort_keys=True, default=str),
                    "created_at": now(),
                    "onnx": onnx,
                },
                ignore=True,
            )

    def load_encoder(self, name: str) -> tuple[bytes, dict[str, Any]] | None:
        """(ONNX bytes, row without them) of a stored encoder, or None."""
        rows = list(self.db.query("select * from encoders where name = ?", [name]))
        if not rows:
            return None
        row = dict(rows[0])
        return bytes(row.pop("onnx")), row

    def latest_encoder_name(self) -> str | None:
        """The most recently stored fine-tuned encoder (the project's encoder), or None."""
        row = self.db.execute(
            "select name from encoders order by created_at desc, rowid desc limit 1"
        ).fetchone()
        return str(row[0]) if row else None

    def project_encoder_name(self) -> str | None:
        """The sentence encoder the project uses when no trained state names one.

        The encoder of the latest trained local model whose state is kept, so that
        ``coder train --default-encoder`` leads back from a fine-tuned encoder and
        ``coder train --fine-tune`` leads to one; without a trained model, the latest
        fine-tuned encoder. None means the shipped default.
        """
        if "models" in self.db.table_names():
            row = self.db.execute(
                "select json_extract(params, '$.encoder') from models "
                "where backend = 'local' and blob is not null and json_valid(params) "
                "order by id desc limit 1"
            ).fetchone()
            if row is not None and row[0]:
                return str(row[0])
        return self.latest_encoder_name()

    def encoders(self) -> list[dict[str, Any]]:
        """Stored fine-tuned encoders (without their bytes), oldest first."""
        return [
            dict(row)
            for row in self.db.query(
                "select name, base, sha256, quantized, params, metrics, created_at, "
                "length(onnx) as size from encoders order by created_at, rowid"
            )
        ]


def shorten_error(error: Exception, width: int = 200) -> str:
    """An exception's message on one line, cut to ``width`` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _attributes_json(attributes: dict[str, Any]) -> str:
    return json.dumps(attributes, ensure_ascii=False, default=str)


def _response_row(response: Response, stamp: str, attributes_json: str | None = None) -> dict[str, Any]:
    return {
        "id": response.id,
        "text": response.text,
        "question": response.question,
        "respondent": response.respondent,
        "attributes": attributes_json if attributes_json is not None else _attributes_json(response.attributes),
        "tags": json.dumps(response.tags, ensure_ascii=False),
        "source_file": response.source_file,
        "source_row": response.source_row,
        "imported_at": stamp,
    }


def _response_from_row(row: Mapping[str, Any] | sqlite3.Row) -> Response:
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


def _proposal_from_row(row: Mapping[str, Any] | sqlite3.Row) -> StoredProposal:
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
