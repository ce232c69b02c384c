"""CLI: ``coder status``.

A module of its own so that ``coder status`` imports only the store and the status library,
not the importer and its spreadsheet readers: it is the command people run most often.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from coder.cli.common import console, db_option, handle_errors, open_store


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option
@handle_errors
def status(as_json: bool, db_path: Path | None) -> None:
    """Show where the project stands: responses, proposals, reviews."""
    from coder.status import project_status

    with open_store(db_path) as store:
        info = project_status(store)
        path = store.path
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    console.print(f"[bold]{path}[/]", highlight=False)
    console.print(f"  codebook version: {info['codebook_version'] or 'none (coder codebook add FILE)'}")
    console.print(f"  responses: {info['responses']}")
    console.print(f"  proposed: {info['proposed']}   failed: {info['failed']}")
    console.print(f"  reviewed: {info['reviewed']}   decisions: {info['decisions']}")
    by_question = info["by_question"]
    assert isinstance(by_question, dict)
    if by_question:
        console.print("  by question: " + ", ".join(f"{k} {v}" for k, v in by_question.items()), highlight=False)
    sessions = info["sessions"]
    assert isinstance(sessions, list)
    if sessions:
        console.print("  review sessions (latest last):")
        for session in sessions:
            console.print(f"    {session['line']}", highlight=False, markup=False)
    reviewers = info.get("reviewers")
    if isinstance(reviewers, list) and reviewers:
        console.print("  reviewers:")
        for stats in reviewers:
            console.print(f"    {stats['line']}", highlight=False, markup=False, soft_wrap=True)
