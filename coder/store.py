"""The project store: one SQLite file per coding project.

Everything that touches the database goes through :class:`Store`, so the TUI, the CLI
and the classifiers share one set of rules: WAL mode and a busy timeout (several
reviewers on one file), proposals and decisions append-only, every label traceable
to a model, prompt hash and codebook version.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coder.decision_queries import DecisionQueries
from coder.encoder_queries import EncoderQueries
from coder.errors import NoCodebookError
from coder.project_file import (
    BUSY_TIMEOUT_MS,
    CURRENT_MIGRATIONS,
    MIGRATION_SET,
    MIGRATIONS_TABLE,
    ProjectFileError,
    StorePart,
    describe_sqlite_error,
    schema_number,
    writable,
)
from coder.project_file import connect as _connect
from coder.proposal_queries import ProposalQueries
from coder.response_queries import ResponseQueries
from coder.store_records import (
    StoredDecision,
    StoredProposal,
    decision_from_row,
    proposal_from_row,
    response_from_row,
    shorten_error,
)

if TYPE_CHECKING:
    from coder.project_database import ProjectDatabase
    from schemas import Codebook

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DEFAULT_DB",
    "ProjectFileError",
    "Store",
    "StorePart",
    "StoredDecision",
    "StoredProposal",
    "decision_from_row",
    "default_db_path",
    "describe_sqlite_error",
    "now",
    "proposal_from_row",
    "response_from_row",
    "schema_number",
    "shorten_error",
]

DEFAULT_DB = "coder.db"


def now() -> str:
    """Current UTC time as an ISO 8601 string with microseconds (sortable)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def default_db_path() -> Path:
    """``$CODER_DB`` if set, else ``coder.db`` in the current directory."""
    return Path(os.environ.get("CODER_DB") or DEFAULT_DB)


class Store(ResponseQueries, ProposalQueries, DecisionQueries, EncoderQueries):
    """A coder project file.

    Opening checks the file before anything is written: not a coder project (another
    SQLite database), damaged, or from a newer coder (a migration this coder does not
    know) raise :class:`ProjectFileError`. A file (or folder) coder cannot write is
    opened read-only: reads work, and any write raises :class:`ProjectFileError`.

    Its parts live beside it, one concept each: responses (``coder/response_queries.py``),
    proposals (``coder/proposal_queries.py``), decisions and assignments
    (``coder/decision_queries.py``) and fine-tuned encoders (``coder/encoder_queries.py``);
    the codebooks and the logs of model calls and eval runs are kept here.

    Reads go through the plain ``sqlite3`` connection (``conn``); sqlite-utils (``db``) is
    imported when a command first writes or migrates, so a read-only command such as
    ``coder status`` starts without it.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.read_only = not writable(self.path)
        try:
            conn = _connect(self.path, self.read_only)
        except sqlite3.Error as error:
            raise ProjectFileError(describe_sqlite_error(self.path, error)) from None
        self.conn = conn
        try:
            pending = self._check_schema()
            if not self.read_only:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode = wal")
                # NORMAL is durable in WAL mode across process crashes (only an OS crash can
                # lose the last transactions), and much faster than FULL per commit.
                conn.execute("PRAGMA synchronous = NORMAL")
                if pending:
                    from coder import migrations

                    migrations.apply(self.db)
        except sqlite3.Error as error:
            conn.close()
            raise ProjectFileError(describe_sqlite_error(self.path, error)) from None
        except BaseException:
            conn.close()
            raise

    @functools.cached_property
    def db(self) -> ProjectDatabase:
        """The connection wrapped by sqlite-utils, built on first use (see the class)."""
        from coder.project_database import ProjectDatabase

        database = ProjectDatabase(self.conn)
        database.read_only = self.read_only
        database.label = str(self.path)
        return database

    def _check_schema(self) -> bool:
        """Refuse, before any write, a file this coder must not migrate or cannot read.
        Returns whether migrations are pending."""
        tables = {row[0] for row in self.conn.execute(
            "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
        ).fetchall()}
        applied: list[str] = []
        if MIGRATIONS_TABLE in tables:
            applied = [row[0] for row in self.conn.execute(
                f"select name from [{MIGRATIONS_TABLE}] where migration_set = ?", [MIGRATION_SET]
            ).fetchall()]
        if tables and not applied:
            raise ProjectFileError(
                f"{self.path}: an SQLite database, but not a coder project (it holds the tables "
                f"{', '.join(sorted(tables)[:8])}); nothing was changed. Give another --db"
            )
        if sorted(applied) == sorted(CURRENT_MIGRATIONS):
            return False  # up to date: no need to import the migrations (and sqlite-utils)
        from coder import migrations

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
        return bool(pending)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> str:
        # Looked up in this module at each call, so a test can fix the clock (coder.store.now).
        return now()

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

    def codebook_version(self) -> int | None:
        """The latest codebook version, None when there is none (its JSON is not read)."""
        row = self.conn.execute("select max(version) from codebook_versions").fetchone()
        return int(row[0]) if row[0] is not None else None

    def codebook(self, version: int | None = None) -> tuple[int, Codebook]:
        """The given codebook version, or the latest. LookupError if there is none."""
        from schemas import Codebook

        if version is None:
            row = self.conn.execute(
                "select version, codebook from codebook_versions order by version desc limit 1"
            ).fetchone()
        else:
            row = self.conn.execute(
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

