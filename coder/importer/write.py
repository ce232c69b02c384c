"""Writing a checked plan, refusing a re-import that would hold answers twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coder.errors import ImportError_
from coder.importer.columns import shorten
from coder.importer.model import ImportPlan


def reimport_conflicts(store: Any, plan: ImportPlan) -> list[str]:
    """Ways in which ``plan`` would import answers already in the project under other question ids.

    Two checks, both needed:

    - by content (catches a re-export of the same survey, whose bytes differ): a response
      of the plan whose file name, row, respondent and text are already stored under a
      question id that this plan does not give them. Answering 'Yes' to two hypotheses is
      fine: only a question the store has *and* the plan lacks (with one the plan adds)
      counts, so an identical re-import is never a conflict.
    - by file hash (catches the same bytes under another file name): an earlier import of
      this exact file that sent a column to another question id, or that came from another
      file name, when this import would add its answers again under new ids.
    """
    problems: list[str] = []
    Key = tuple[int | None, str | None, str]
    planned: dict[Key, set[str | None]] = {}
    earlier_rows = store.response_keys_from_file(plan.source.name)
    # A first import (the common case, and the 100k-row benchmark) has nothing to compare.
    for response in plan.responses if earlier_rows else ():
        if (response.text or "").strip():  # a hand-built plan may hold no text
            planned.setdefault((response.source_row, response.respondent, response.text), set()).add(response.question)
    stored: dict[Key, set[str | None]] = {}
    for row, respondent, text, question in earlier_rows:
        key = (row, respondent, text)
        if key in planned:
            stored.setdefault(key, set()).add(question)
    clashes = [
        (key, sorted(map(str, stored[key] - questions)), sorted(map(str, questions - stored[key])))
        for key, questions in planned.items()
        if key in stored and stored[key] - questions and questions - stored[key]
    ]
    if clashes:
        (row, respondent, _), old, new = clashes[0]
        problems.append(
            f"by content, {len(clashes)} answer(s) with the same file name, row, respondent and text "
            f"are stored under other question ids (e.g. row {row}, respondent {respondent}: stored as "
            f"{shorten(old[0])!r}, now {shorten(new[0])!r})"
        )
    current = plan.mapping.get("questions") or {}
    for earlier in store.imports_of_file_hash(plan.file_hash):
        try:
            before = (json.loads(earlier["mapping"] or "{}") or {}).get("questions") or {}
        except json.JSONDecodeError:
            continue
        changed = [(h, before[h], current[h]) for h in current if h in before and before[h] != current[h]]
        earlier_name = Path(earlier["source_file"]).name
        if not changed and earlier_name != plan.source.name:
            # Without an id column, ids hash the file name: a renamed copy would get new ids.
            ids = [r.id for r in plan.responses]
            present = {r.id for r in store.responses(ids=ids)}
            fresh = sum(1 for i in ids if i not in present)
            if fresh:
                problems.append(
                    f"by file hash, the same content (sha256 {plan.file_hash[:12]}) was imported on "
                    f"{earlier['created_at'][:16].replace('T', ' ')} from {earlier_name}, and {fresh} of "
                    "its answers would be added again under new ids (a file without an id column gets "
                    "ids from its name)"
                )
                break
        if changed:
            header, old_id, new_id = changed[0]
            problems.append(
                f"by file hash, the same content (sha256 {plan.file_hash[:12]}) was imported on "
                f"{earlier['created_at'][:16].replace('T', ' ')} from {Path(earlier['source_file']).name} "
                f"with {len(changed)} column(s) under other question ids (e.g. column {shorten(header)!r}: "
                f"{shorten(old_id)!r} then, {shorten(new_id)!r} now)"
            )
            break
    return problems


def check_reimport(store: Any, plan: ImportPlan) -> None:
    """Refuse a plan that would store answers a second time under other question ids."""
    problems = reimport_conflicts(store, plan)
    if problems:
        raise ImportError_(
            f"{plan.source}: refused: this file was imported before under other question ids, so "
            f"importing it now would hold its answers twice; {'; and '.join(problems)}. Nothing was "
            "imported. Import it with the same mapping as before (nothing is added twice), or "
            "import it into a new project file (--db NEW.db)"
        )


def run_import(store: Any, plan: ImportPlan) -> tuple[int, int]:
    """Write a checked plan to the store in one transaction. Returns (added, skipped).

    Refuses (writing nothing) a plan that would hold answers already stored under other
    question ids; see :func:`reimport_conflicts`.
    """
    from coder.store import now

    with store.db.atomic():
        check_reimport(store, plan)
        added, skipped = store.add_responses(plan.responses)
        store.db.table("imports").insert(
            {
                "source_file": str(plan.source),
                "file_hash": plan.file_hash,
                "shape": plan.shape,
                "mapping": json.dumps(plan.mapping, ensure_ascii=False),
                "added": added,
                "skipped": skipped,
                "created_at": now(),
            }
        )
    return added, skipped
