"""SQL of the OpenAI Batch API path (``llm_batches``: one row per submitted batch)."""

from __future__ import annotations

from typing import Any

from coder.store import Store


def record_batch(store: Store, row: dict[str, Any]) -> None:
    """Record a submitted batch (before any waiting, so a dead run can resume it)."""
    store.db.table("llm_batches").insert(row)


def pending_batch_id(store: Store) -> str | None:
    """The newest batch not yet ingested."""
    row = store.db.execute(
        "select batch_id from llm_batches where ingested_at is null order by created_at desc limit 1"
    ).fetchone()
    return row[0] if row else None


def batch_record(store: Store, batch_id: str) -> dict[str, Any] | None:
    """The ``llm_batches`` row of ``batch_id``, or None when it is not recorded."""
    rows = list(store.db.query("select * from llm_batches where batch_id = ?", [batch_id]))
    return rows[0] if rows else None


def set_batch_status(store: Store, batch_id: str, status: str) -> None:
    """Remember the status the Batch API last reported."""
    store.db.table("llm_batches").update(batch_id, {"status": status})


def mark_ingested(
    store: Store, batch_id: str, ingested_at: str, output_file_id: str | None
) -> None:
    """Mark the batch ingested (inside the caller's transaction with its proposals)."""
    store.db.table("llm_batches").update(
        batch_id, {"ingested_at": ingested_at, "output_file_id": output_file_id}
    )
