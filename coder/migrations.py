"""Numbered schema migrations for a coder project file.

Each migration runs in one transaction together with the record that it ran
(sqlite-utils 4 ``Migrations``). Never edit a migration that has shipped: add a new
one at the end, so old project files upgrade in place.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("coder")


@migrations(name="m001_initial")
def m001_initial(db: Database) -> None:
    _create_responses(db)
    _create_codebook_versions(db)
    _create_proposals(db)
    _create_decisions(db)
    _create_logs(db)


def _create_responses(db: Database) -> None:
    """m001: the imported answers."""
    db.table("responses").create(
        {
            "id": str,
            "text": str,
            "question": str,
            "respondent": str,
            "attributes": str,  # JSON object: role, organisation, locality ...
            "tags": str,  # JSON list of hashtags found in the text
            "source_file": str,
            "source_row": int,
            "imported_at": str,
        },
        pk="id",
        not_null={"text"},
    )
    db.table("responses").create_index(["question"])


def _create_codebook_versions(db: Database) -> None:
    """m001: every codebook version, keyed by the hash of its canonical JSON."""
    db.table("codebook_versions").create(
        {
            "version": int,
            "hash": str,
            "name": str,
            "codebook": str,  # JSON of schemas.Codebook
            "source": str,
            "created_at": str,
        },
        pk="version",
    )
    db.table("codebook_versions").create_index(["hash"], unique=True)


def _create_proposals(db: Database) -> None:
    """m001: the classifiers' proposals."""
    # One row per model run per response; rows are never updated, so the model's
    # original proposal survives every later decision and re-run.
    db.table("proposals").create(
        {
            "id": int,
            "response_id": str,
            "backend": str,
            "model": str,
            "model_version": str,
            "prompt_template_hash": str,
            "system_prompt_hash": str,
            "codebook_version": int,
            "params": str,  # JSON
            "input_hash": str,  # cache key: model + params + prompt + codebook + text
            "output": str,  # JSON of schemas.Proposal (null when failed)
            "confidence": float,
            "status": str,  # 'ok' | 'failed'
            "error": str,
            "run_id": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("response_id", "responses", "id")],
    )
    db.table("proposals").create_index(["response_id", "id"])
    db.table("proposals").create_index(["input_hash"])
    db.table("proposals").create_index(["status"])


def _create_decisions(db: Database) -> None:
    """m001: the reviewers' decisions."""
    # Append-only human actions. 'undo' rows point at the decision they cancel.
    db.table("decisions").create(
        {
            "id": int,
            "response_id": str,
            "reviewer": str,
            "action": str,
            "labels": str,  # JSON of schemas.Labels (null for notes/skips)
            "proposal_id": int,
            "reason_code": str,
            "note": str,
            "undoes": int,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("response_id", "responses", "id")],
    )
    db.table("decisions").create_index(["response_id", "reviewer", "id"])
    db.table("decisions").create_index(["reviewer"])


def _create_logs(db: Database) -> None:
    """m001: the logs of LLM calls, eval runs and imports."""
    db.table("llm_calls").create(
        {
            "id": int,
            "run_id": str,
            "backend": str,
            "model": str,
            "base_url": str,
            "response_ids": str,  # JSON list
            "request": str,  # JSON, without credentials
            "response": str,  # JSON
            "prompt_tokens": int,
            "completion_tokens": int,
            "duration_ms": float,
            "cost_usd": float,
            "error": str,
            "created_at": str,
        },
        pk="id",
    )

    db.table("eval_runs").create(
        {
            "id": int,
            "created_at": str,
            "name": str,
            "backend": str,
            "model": str,
            "prompt_hash": str,
            "codebook_version": str,
            "codebook_hash": str,
            "data_hash": str,
            "n_items": int,
            "params": str,  # JSON
            "metrics": str,  # JSON
            "command": str,
        },
        pk="id",
    )

    db.table("imports").create(
        {
            "id": int,
            "source_file": str,
            "file_hash": str,
            "shape": str,
            "mapping": str,  # JSON
            "added": int,
            "skipped": int,
            "created_at": str,
        },
        pk="id",
    )


def apply(db: Database) -> None:
    """Bring ``db`` up to the latest schema."""
    migrations.apply(db)


def names() -> list[str]:
    """Names of every migration this coder knows, oldest first."""
    return [migration.name for migration in migrations._migrations]


@migrations(name="m002_llm_redaction_and_batches")
def m002_llm_redaction_and_batches(db: Database) -> None:
    # The text actually sent to a non-local LLM endpoint, PII replaced by markers,
    # kept beside the original so reviewers can see what left the machine.
    db.table("responses").add_column("redacted_text", str)
    db.table("responses").add_column("redactions", str)  # JSON: kind -> count
    # OpenAI Batch API jobs, so `coder precode --batch-api` can resume after a restart.
    db.table("llm_batches").create(
        {
            "batch_id": str,
            "input_file_id": str,
            "output_file_id": str,
            "run_id": str,
            "model": str,
            "base_url": str,
            "codebook_version": int,
            "response_ids": str,  # JSON list
            "requests": str,  # JSON: custom_id -> response ids, question, provenance
            "status": str,
            "created_at": str,
            "ingested_at": str,
        },
        pk="batch_id",
    )


@migrations(name="m003_discover_theme_candidates")
def m003_discover_theme_candidates(db: Database) -> None:
    # Candidate new themes found by `coder discover`, kept until an analyst accepts (it then
    # becomes a codebook version), renames, merges or rejects them.
    db.table("theme_candidates").create(
        {
            "id": int,
            "run_id": str,
            "label": str,
            "definition": str,
            "terms": str,  # JSON list: the cluster's most characteristic terms
            "response_ids": str,  # JSON list: every member of the cluster
            "examples": str,  # JSON list of example response texts
            "count": int,
            "questions": str,  # JSON list of the members' question ids
            "method": str,  # e.g. 'agglomerative+ctfidf' or 'agglomerative+llm:gpt-4o-mini'
            "codebook_version": int,
            "status": str,  # 'proposed' | 'accepted' | 'rejected' | 'merged'
            "merged_into": int,
            "theme_id": str,  # the codebook theme id once accepted
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
    )
    db.table("theme_candidates").create_index(["status"])


@migrations(name="m004_embedded_models")
def m004_embedded_models(db: Database) -> None:
    # Trained states of the embedded (local) classifier. Rows are never updated: a proposal's
    # model_version names the row that made it, so any proposal can be traced to its model.
    db.table("models").create(
        {
            "id": int,
            "backend": str,  # 'local'
            "model": str,  # e.g. 'minilm-l6-int8+kernel-ridge'
            "version": str,  # the model_version written on proposals
            "params": str,  # JSON
            "metrics": str,  # JSON: cross-validated F1 per code etc.
            "n_examples": int,
            "codebook_version": int,
            "trained_at": str,
            "blob": bytes,  # a TrainedState as JSON + npz (coder/embedded/state_io.py); old rows: pickle, never loaded
        },
        pk="id",
    )
    db.table("models").create_index(["version"])


@migrations(name="m005_finetuned_encoders")
def m005_finetuned_encoders(db: Database) -> None:
    # Fine-tuned sentence encoders (`coder train --fine-tune`) as ONNX bytes, so a colleague
    # without the fine-tuning extra runs them on onnxruntime. A row is never updated: a
    # trained model's encoder_name names its row, and the sha256 is checked on load.
    db.table("encoders").create(
        {
            "name": str,  # 'minilm-l6-ft-<sha256[:12]>'
            "base": str,  # the starting weights and their package
            "sha256": str,  # of onnx
            "quantized": int,  # 1: dynamic int8 graph (texts run one at a time)
            "params": str,  # JSON: fine-tuning settings
            "metrics": str,  # JSON: steps, losses, times, int8-vs-float cosine, library versions
            "created_at": str,
            "onnx": bytes,
        },
        pk="name",
    )


@migrations(name="m007_assignments")
def m007_assignments(db: Database) -> None:
    # Who codes which answer (`coder assign`). Rows are never updated: a later assignment
    # run adds rows, and a response's assignment is its latest run's rows. A double-coded
    # answer has two rows in one run (double_coded = 1); blind = 1 hides the model's proposal.
    db.table("assignments").create(
        {
            "id": int,
            "run_id": str,
            "response_id": str,
            "reviewer": str,
            "double_coded": int,
            "blind": int,
            "seed": int,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("response_id", "responses", "id")],
    )
    db.table("assignments").create_index(["reviewer"])
    db.table("assignments").create_index(["response_id", "run_id"])


@migrations(name="m008_reviewer_tokens")
def m008_reviewer_tokens(db: Database) -> None:
    # Sign-in tokens for `coder serve`, one row per reviewer name. Only a SHA-256 of the
    # token is kept: the token itself is shown once, by `coder reviewers add`.
    db.table("reviewer_tokens").create(
        {
            "reviewer": str,
            "token_sha256": str,
            "created_at": str,
            "revoked_at": str,  # null while the token works
            "last_sign_in": str,
        },
        pk="reviewer",
    )
    # Which item each open review session is on, so two sessions do not review one item at
    # once. One row per session: moving to another item replaces it; quitting deletes it; a
    # crashed session's row lapses at expires_at.
    db.table("leases").create(
        {
            "session_id": str,
            "reviewer": str,
            "response_id": str,
            "taken_at": str,
            "expires_at": str,
        },
        pk="session_id",
    )
    db.table("leases").create_index(["response_id"])
