"""``coder train``: refit the offline classifier from reviewers' decisions."""

from __future__ import annotations

from pathlib import Path

import click

from coder.cli_common import console, db_option, handle_errors, open_store


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
    console.print(
        f"Re-proposed {summary.n_reproposed} unreviewed responses "
        f"in {summary.propose_seconds:.1f} s."
    )
