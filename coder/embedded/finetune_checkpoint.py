"""Checkpoints of a fine-tuning run: arrays as ``.npz`` (read with ``allow_pickle=False``)
and a JSON file written last, so an interrupted run resumes where it stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from coder.atomic import write_atomically
from coder.errors import CoderError


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(temporary: Path) -> None:
        with temporary.open("wb") as handle:
            np.savez(handle, allow_pickle=False, **arrays)

    write_atomically(path, write)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def save_checkpoint(
    folder: Path,
    meta: dict[str, Any],
    params: dict[str, Any],
    best: dict[str, Any],
    optimizer_leaves: list[Any],
) -> None:
    """Write a checkpoint of the run into ``folder`` (the JSON file last)."""
    folder.mkdir(parents=True, exist_ok=True)
    _save_npz(folder / "params.npz", {k: np.asarray(v) for k, v in params.items()})
    _save_npz(folder / "best.npz", {k: np.asarray(v) for k, v in best.items()})
    _save_npz(
        folder / "optimizer.npz",
        {f"leaf_{i:04d}": np.asarray(leaf) for i, leaf in enumerate(optimizer_leaves)},
    )
    # The JSON last: a checkpoint counts only once its arrays are all in place.
    write_atomically(
        folder / "checkpoint.json",
        lambda temporary: temporary.write_text(json.dumps(meta, indent=1, sort_keys=True)),
    )


def load_checkpoint(folder: Path, run: str) -> tuple[dict[str, Any], ...] | None:
    """(meta, params, best, optimizer) of run ``run``'s checkpoint; None when there is none."""
    meta_path = folder / "checkpoint.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("run") != run:
            return None
        params = _load_npz(folder / "params.npz")
        best = _load_npz(folder / "best.npz")
        optimizer = _load_npz(folder / "optimizer.npz")
    except (OSError, ValueError) as error:
        raise CoderError(
            f"{folder}: the fine-tuning checkpoint cannot be read ({error}); delete the folder "
            "to start afresh"
        ) from None
    return meta, params, best, optimizer
