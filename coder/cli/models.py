"""CLI: ``coder models`` — the project's trained models and what each was trained on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from coder.cli.common import console, db_option, handle_errors, open_store


def _cv_summary(record: dict[str, Any]) -> str:
    """'themes stacked 0.61 (zero-shot 0.52)', one field per line: the gate's figures."""
    if record.get("gate_skipped"):
        return f"gate skipped ({record['gate_skipped']})"
    lines = []
    for name, scores in (record.get("cv") or {}).items():
        chosen = (record.get("fields") or {}).get(name, "trained")
        value = scores.get(chosen)
        zero = scores.get("zero-shot")
        shown = "–" if value is None else f"{value:.3f}"
        line = f"{name} {chosen} {shown}"
        if chosen != "zero-shot" and zero is not None:
            line += f" (zero-shot {zero:.3f})"
        lines.append(line)
    return "\n".join(lines) or "–"


def _counts(record: dict[str, Any]) -> str:
    examples = record.get("examples") or {}
    if not examples:
        return str(record.get("n_examples") or "–")
    themes = examples.get("themes") or {}
    stance = examples.get("stance") or {}
    relevance = examples.get("relevance") or {}
    return (
        f"{examples.get('total', record.get('n_examples'))} answers; "
        f"{sum(themes.values())} theme labels on {len(themes)} codes; "
        f"{sum(stance.values())} stances; {relevance.get('not relevant', 0)} not relevant"
    )


@click.command("models")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print every record in full as JSON.")
@handle_errors
def models(db_path: Path | None, as_json: bool) -> None:
    """List the project's trained models: version, when, storage format, encoder, what each
    was trained on (labels per field, codebook version, seed, library versions), its
    cross-validated figures and which one is active."""
    from coder.embedded.training import model_records

    with open_store(db_path) as store:
        records = model_records(store)
    if as_json:
        print(json.dumps(records, indent=2, ensure_ascii=False))
        return
    if not records:
        console.print("No trained models yet: run 'coder train'.")
        return
    table = Table("version", "created", "format", "encoder", "trained on", "cross-validated", "active")
    for record in records:
        table.add_row(
            str(record["version"]),
            str(record["created"]),
            str(record["format"]),
            str(record["encoder"] or "–"),
            f"codebook v{record['codebook_version']}: {_counts(record)}",
            _cv_summary(record),
            "yes" if record["active"] else "",
        )
    console.print(table)
