"""The reviewed labels in force, written as a JSON Lines file."""

from __future__ import annotations

import json
from pathlib import Path

from coder.atomic import check_output_path, write_atomically
from coder.store import Store


def export_labels(store: Store, path: str, reviewer: str | None = None) -> int:
    """Write the labels in force to a JSONL file (one object per response). Returns rows."""
    final = store.final_labels(reviewer)

    def write(temporary: Path) -> None:
        with temporary.open("w", encoding="utf-8") as handle:
            for response_id, decision in final.items():
                row = {
                    "response_id": response_id,
                    "reviewer": decision.reviewer,
                    "action": decision.action,
                    "decision_id": decision.id,
                    "proposal_id": decision.proposal_id,
                    **(decision.labels.model_dump() if decision.labels else {}),
                }
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    check_output_path(Path(path), protect=[Path(store.path)])
    write_atomically(Path(path), write)
    return len(final)
