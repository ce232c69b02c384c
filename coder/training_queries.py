"""SQL of the embedded classifier's training: the ``models`` table (trained states) and the
responses a retrained model re-proposes."""

from __future__ import annotations

from typing import Any

from coder.store import Store


def unreviewed_response_ids(store: Store) -> list[str]:
    """Responses no reviewer has made any decision on, in import order."""
    sql = (
        "select id from responses where id not in (select response_id from decisions) "
        "order by rowid"
    )
    return [row[0] for row in store.db.execute(sql).fetchall()]


def proposed_by(store: Store, model_version: str) -> set[str]:
    """Responses that already have a successful proposal from ``model_version``."""
    sql = "select distinct response_id from proposals where model_version = ? and status = 'ok'"
    return {row[0] for row in store.db.execute(sql, [model_version]).fetchall()}


def has_models_table(store: Store) -> bool:
    """Whether the project has a ``models`` table (older files and read-only opens may not)."""
    return "models" in store.db.table_names()


def replace_model_row(store: Store, row: dict[str, Any]) -> int:
    """Insert a local model's row, replacing any row of the same version, in one
    transaction; returns the new row's id."""
    with store.db.atomic():
        if has_models_table(store):
            store.db.execute(
                "delete from models where backend = 'local' and version = ?", [row["version"]]
            )
        table = store.db.table("models")
        table.insert(row)
        return int(table.last_pk or 0)


def prune_model_blobs(store: Store, keep: int) -> int:
    """Set the blob of all but the latest ``keep`` models per backend to NULL; returns how
    many rows lost theirs."""
    if not has_models_table(store):
        return 0
    with store.db.conn:
        cursor = store.db.execute(
            """update models set blob = null
            where blob is not null and id not in (
                select id from models as latest
                where latest.backend = models.backend and latest.blob is not null
                order by latest.id desc limit ?
            )""",
            [keep],
        )
    return int(cursor.rowcount or 0)


def local_model_blob(store: Store, version: str | None = None) -> tuple[Any, str] | None:
    """(blob, version) of the latest local model with a kept blob, or of ``version`` (whose
    blob may be NULL: pruned); None when there is none."""
    if not has_models_table(store):
        return None
    sql = "select blob, version from models where backend = 'local'"
    params: list[Any] = []
    if version is not None:
        sql += " and version = ?"
        params.append(version)
    else:
        sql += " and blob is not null"
    rows = store.db.execute(sql + " order by id desc limit 1", params).fetchall()
    return (rows[0][0], rows[0][1]) if rows else None


def model_blob_heads(store: Store) -> list[tuple[int, str, str, Any]]:
    """(id, backend, version, first 64 bytes of the blob) of every model, oldest first."""
    if not has_models_table(store):
        return []
    # The first bytes tell the format; states are megabytes, so only those are read.
    sql = "select id, backend, version, substr(blob, 1, 64) from models order by id"
    return [(row[0], row[1], row[2], row[3]) for row in store.db.execute(sql)]


def model_rows(store: Store) -> list[dict[str, Any]]:
    """Trained models of the project (without blobs), oldest first."""
    if not has_models_table(store):
        return []
    return [
        dict(row)
        for row in store.db.query(
            "select id, model, version, params, metrics, n_examples, codebook_version, "
            "trained_at, blob is null as pruned from models order by id"
        )
    ]
