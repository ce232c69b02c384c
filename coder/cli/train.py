"""``coder train``: refit the offline classifier from reviewers' decisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from coder.cli.common import console, db_option, err_console, handle_errors, open_store


@click.command()
@db_option
@click.option(
    "--from-file",
    "from_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Train on a gold-format items file (JSONL: id, text, question, labels, stance, "
    "relevant) instead of the project's decisions.",
)
@click.option(
    "--split",
    default=None,
    help="With --from-file: only items whose meta.source_split is this (e.g. 'train').",
)
@click.option(
    "--codebook-version", type=int, default=None, help="Codebook version (default: latest)."
)
@click.option(
    "--no-repropose",
    is_flag=True,
    help="Only train and store the model; do not re-propose unreviewed responses.",
)
@handle_errors
def train(
    db_path: Path | None,
    from_file: Path | None,
    split: str | None,
    codebook_version: int | None,
    no_repropose: bool,
) -> None:
    """Train the local (offline) classifier and re-propose unreviewed responses.

    Learns from every response's labels in force (accepted, corrected or adjudicated), or
    from --from-file. The model is stored in the project; responses nobody has reviewed get
    a new proposal from it (earlier proposals are kept).
    """
    from coder.embedded.retrain import retrain_and_repropose

    with open_store(db_path) as store:
        with console.status("Training the local classifier ..."):
            summary = retrain_and_repropose(
                store,
                codebook_version,
                from_file=from_file,
                split=split,
                repropose=not no_repropose,
            )
    console.print(
        f"Trained [bold]{summary.model_version}[/] on {summary.n_examples} labelled responses "
        f"({summary.source}, codebook v{summary.codebook_version}) in {summary.train_seconds:.1f} s."
    )
    _print_fields(summary.fields, summary.metrics.get("gate") or {})
    console.print(
        f"Re-proposed {summary.n_reproposed} unreviewed responses "
        f"in {summary.propose_seconds:.1f} s."
    )
    _print_changes(summary.changes)


#: Why a field proposes as it does, by the gate's choice (coder/embedded/gate.py).
_WHY = {
    "zero-shot": "kept zero-shot: no trained option beat it out of fold",
    "augmented": "zero-shot matching with reviewed answers as extra examples",
    "hybrid": "trained model for codes with enough examples, zero-shot for the rest",
    "trained": "trained model",
    "trained+cues": "trained model; the respondent's explicit opening wins",
}


def _print_fields(fields: dict[str, str], gate: dict[str, Any]) -> None:
    """Which model proposes each field, and the cross-validated scores behind the choice."""
    if not fields:
        return
    table = Table("field", "proposed by", "why", "out-of-fold score per option", box=None)
    for name in ("themes", "stance", "relevance"):
        used = fields.get(name, "trained")
        scores = gate.get(name) or {}
        shown = ", ".join(
            f"{option} {'–' if value is None else f'{value:.3f}'}" for option, value in scores.items()
        )
        why = _WHY.get(used, used)
        if scores and all(value is None for value in scores.values()):
            why = "kept zero-shot: the reviewed answers give nothing to judge by"
        if gate.get("skipped"):
            why += f" (gate skipped: {gate['skipped']})"
        table.add_row(name, used, why, shown or "–")
    console.print(table)
    if gate.get("n_examples") and not gate.get("skipped"):
        console.print(
            "A trained option replaces a safer one only when it beats it on the same "
            f"answers, out of fold in {gate['n_examples']}-answer cross-validation, by more "
            "than the noise of that comparison.",
            highlight=False,
        )


def _print_changes(changes: dict[str, dict[str, list[int]]]) -> None:
    """Counts per label before -> after re-proposing (so a collapse is seen at once)."""
    if not changes:
        return
    table = Table("field", "label", "before", "after", title="Proposals of unreviewed responses")
    for name, labels in changes.items():
        for label, (before, after) in labels.items():
            if before or after:
                mark = "" if before == after else (" ▲" if after > before else " ▼")
                table.add_row(name, label, str(before), f"{after}{mark}")
    console.print(table)
    lost = [
        f"{name} {label!r}"
        for name, labels in changes.items()
        for label, (before, after) in labels.items()
        if before > 0 and after == 0 and name == "stance"
    ]
    if lost:
        err_console.print(
            f"[yellow]warning:[/] no unreviewed response is proposed as {', '.join(lost)} any "
            "more (was before): review a few such answers so the model can learn them.",
            highlight=False,
        )
