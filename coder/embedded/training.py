"""Labelled examples for the embedded classifier, and where trained models are kept.

Examples come from reviewers' decisions in a project (:func:`examples_from_store`) or from a
gold-format items file (:func:`examples_from_gold_file`). A trained state is stored in the
project's ``models`` table (migration m004) as JSON plus numpy arrays
(:mod:`coder.embedded.state_io`), never as a pickle, so opening a project file received from
someone else cannot run code: one append-only row per training run, so the ``model_version``
on every proposal names the exact model that made it, and the project file stays the single
thing to copy or archive. Rows pickled by older versions are never unpickled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coder import training_queries
from coder.embedded import state_io
from coder.errors import CoderError
from coder.jsonl import jsonl_objects
from coder.store import Store, now


@dataclass
class LabelledExample:
    """One response with the labels a human gave it."""

    text: str
    question: str | None = None
    themes: list[str] = field(default_factory=list)
    #: codes the humans were split on: left out of training for those codes
    uncertain_themes: list[str] = field(default_factory=list)
    stance: str | None = None
    relevant: bool | None = True
    id: str | None = None
    group: str | None = None


def examples_from_store(store: Store) -> list[LabelledExample]:
    """Every response with a labelling decision in force (adjudications win, undos respected)."""
    decisions = store.final_labels()
    examples = []
    for response_id, decision in decisions.items():
        if decision.labels is None:
            continue
        response = store.response(response_id)
        labels = decision.labels
        examples.append(
            LabelledExample(
                id=response_id,
                text=response.text,
                question=labels.question or response.question,
                themes=list(labels.themes) if labels.relevant else [],
                stance=labels.stance,
                relevant=labels.relevant,
            )
        )
    return examples


def examples_from_gold_file(path: str | Path, split: str | None = None) -> list[LabelledExample]:
    """Items of a gold-format JSONL file; ``split`` keeps items whose meta.source_split matches."""
    path = Path(path)
    examples = []
    for number, item in jsonl_objects(path):
        if "text" not in item:
            raise CoderError(f"{path}, line {number}: an item needs at least a 'text' field")
        if split is not None and (item.get("meta") or {}).get("source_split") != split:
            continue
        examples.append(
            LabelledExample(
                id=str(item.get("id")) if item.get("id") is not None else None,
                text=str(item.get("text") or ""),
                question=item.get("question"),
                themes=list(item.get("labels") or []),
                uncertain_themes=list(item.get("uncertain_labels") or []),
                stance=item.get("stance"),
                relevant=item.get("relevant"),
                group=item.get("group"),
            )
        )
    return examples


def hash_examples(
    digest: Any, examples: Sequence[LabelledExample], *, with_question: bool = True
) -> None:
    """Feed each example's text and labels (and question) to ``digest``, one JSON list each."""
    for example in examples:
        question = [example.question] if with_question else []
        labels = [
            sorted(example.themes),
            sorted(example.uncertain_themes),
            example.stance,
            example.relevant,
        ]
        digest.update(json.dumps([example.text, *question, *labels], ensure_ascii=False).encode("utf-8"))


def examples_hash(examples: list[LabelledExample], params: dict[str, Any]) -> str:
    """A short hash of the training data and parameters: the trained state's identity."""
    digest = hashlib.sha256()
    hash_examples(digest, examples)
    digest.update(json.dumps(params, sort_keys=True, default=str).encode("utf-8"))
    return digest.hexdigest()[:12]


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries a trained model's numbers depend on (None: not installed)."""
    from importlib import metadata

    import coder

    versions: dict[str, str | None] = {"coder": coder.__version__}
    for name in ("numpy", "scipy", "scikit-learn", "onnxruntime", "tokenizers"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def save_state(store: Store, state: Any, *, model: str, codebook_version: int | None) -> int:
    """Store a trained state (a ``TrainedState``: its version, params, metrics and example
    count go into their columns) in the project's ``models`` table; returns its row id.

    One row per version: the version is a hash of the training data and settings, so a
    rerun of ``coder train`` on the same labels (e.g. after the first run was killed while
    re-proposing) makes the same version, and its row is replaced by the new one, in one
    transaction, instead of being added twice. The new row is the latest, i.e. the active
    model; proposals name their model by version, so they still point at it.
    """
    blob = state_io.dumps(state)  # before the transaction: a state that cannot be stored fails here
    row = {
        "backend": "local",
        "model": model,
        "version": state.version,
        "params": json.dumps(state.params, sort_keys=True, default=str),
        "metrics": json.dumps(state.metrics, sort_keys=True, default=str),
        "n_examples": state.n_examples,
        "codebook_version": codebook_version,
        "trained_at": now(),
        "blob": blob,
    }
    row_id = training_queries.replace_model_row(store, row)
    prune_model_blobs(store)
    return row_id


#: Trained states kept per backend; older rows keep their metadata with blob NULL.
KEEP_MODEL_BLOBS = 3


def prune_model_blobs(store: Store, keep: int = KEEP_MODEL_BLOBS) -> int:
    """Drop the blobs of all but the latest ``keep`` models per backend; returns how many.

    A state is several megabytes and the review loop retrains every few decisions, so
    the project file would grow without bound. The row itself stays (version, params,
    metrics, trained_at) so every proposal's model_version still names its model; a NULL
    blob records that the state was pruned.
    """
    return training_queries.prune_model_blobs(store, keep)


def load_state(store: Store, version: str | None = None) -> Any | None:
    """The latest trained state (or the one with ``version``), or None if none was trained.

    Only the safe format of :mod:`coder.embedded.state_io` is read. A row pickled by an
    older coder (or planted in a file by someone else) is never unpickled: loading it raises
    a :class:`CoderError` that says to run ``coder train`` again.
    """
    found_row = training_queries.local_model_blob(store, version)
    if found_row is None:
        return None
    blob, found = found_row
    if blob is None:
        raise CoderError(
            f"{store.path}: the local model {version!r} was pruned (only the latest "
            f"{KEEP_MODEL_BLOBS} trained models are kept); run 'coder train' for a new one"
        )
    kind = state_io.blob_format(bytes(blob))
    if kind != state_io.FORMAT_NAME:
        what = (
            "was stored as a Python pickle by an older version of coder (or planted by someone); "
            "coder no longer loads pickles, because loading one can run arbitrary code"
            if kind == "pickle"
            else "is not in a format this version of coder reads"
        )
        raise CoderError(
            f"{store.path}: the trained local model {found!r} {what}. It was not loaded. Run "
            "'coder train' again to store a new model in the safe format ('coder doctor' lists "
            "such rows)"
        )
    try:
        return state_io.loads(bytes(blob))
    except CoderError as error:
        raise CoderError(
            f"{store.path}: the trained local model {found!r} cannot be loaded ({error}); run "
            "'coder train' again"
        ) from None


def model_storage(store: Store) -> list[dict[str, Any]]:
    """Every ``models`` row with the format of its blob (see :func:`state_io.blob_format`)."""
    return [
        {"id": row[0], "backend": row[1], "version": row[2], "format": state_io.blob_format(row[3])}
        for row in training_queries.model_blob_heads(store)
    ]


def model_records(store: Store) -> list[dict[str, Any]]:
    """What each trained model of the project was trained on and how it scored, oldest first.

    One dict per ``models`` row: id, version, created, format (of its stored state),
    encoder, codebook version, examples (per field: how many labels of each value),
    seed, library versions, training seconds, the gate's choice per field and its
    cross-validated scores, and whether it is the active model (the one ``coder precode``
    and ``coder train``'s re-proposals use: the latest local row whose state is kept).
    """
    formats = {row["id"]: row["format"] for row in model_storage(store)}
    rows = model_rows(store)
    loadable = [
        row["id"] for row in rows if formats.get(row["id"]) == state_io.FORMAT_NAME
    ]
    active = max(loadable) if loadable else None
    records = []
    for row in rows:
        params = _json_or_empty(row.get("params"))
        metrics = _json_or_empty(row.get("metrics"))
        record = metrics.get("record") or {}
        gate = metrics.get("gate") or {}
        records.append(
            {
                "id": row["id"],
                "version": row["version"],
                "created": row["trained_at"],
                "format": formats.get(row["id"]),
                "model": row["model"],
                "encoder": params.get("encoder"),
                "codebook_version": row["codebook_version"],
                "n_examples": row["n_examples"],
                "examples": record.get("examples") or {},
                "seed": record.get("seed"),
                "libraries": record.get("libraries") or {},
                "train_seconds": metrics.get("train_seconds"),
                "fields": record.get("fields") or {},
                "cv": {name: gate[name] for name in ("themes", "stance", "relevance") if name in gate},
                "gate_skipped": gate.get("skipped"),
                "kernel_cv_f1": metrics.get("kernel_cv_f1") or {},
                "active": row["id"] == active,
            }
        )
    return records


def _json_or_empty(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def model_rows(store: Store) -> list[dict[str, Any]]:
    """Trained models of the project (without blobs), oldest first."""
    return training_queries.model_rows(store)
