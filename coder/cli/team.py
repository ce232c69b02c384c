"""CLI: ``coder merge`` and ``coder assign`` (coders who work apart, and a lead who splits
the work)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from coder.cli.common import console, db_option, err_console, handle_errors, open_store


@click.command("merge")
@click.argument("theirs", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print what was merged as JSON.")
@db_option
@handle_errors
def merge(theirs: Path, as_json: bool, db_path: Path | None) -> None:
    """Bring another copy's decisions, proposals, codebook versions and models into this project.

    THEIRS is a copy of this project (same responses) that someone worked on apart. Rows are
    matched by content, so merging twice adds nothing and A into B ends like B into A.
    Responses both copies labelled differently are kept both ways and listed: adjudicate
    them with 'coder review --adjudicate A B'. THEIRS is never changed, and the merge is one
    transaction: if it fails, this project is unchanged.
    """
    from coder.merge import merge_projects

    with open_store(db_path) as store:
        report = merge_projects(store, theirs)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
        return
    for line in report.lines():
        console.print(line, highlight=False, markup=False)


@click.command("assign")
@click.option("--reviewers", required=True, metavar="A,B,C",
              help="Reviewer names separated by commas (the names they review under).")
@click.option("--overlap", type=float, default=0.0, show_default=True,
              help="Share of answers (0-1) given to two reviewers, for agreement and adjudication.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for which answers are shared and who gets what (same seed, same split).")
@click.option("--blind", is_flag=True,
              help="Hide the model's proposal from both reviewers of a double-coded answer.")
@click.option("--question", default=None, help="Assign only this question's answers.")
@click.option("--json", "as_json", is_flag=True, help="Print the assignment as JSON.")
@db_option
@handle_errors
def assign(reviewers: str, overlap: float, seed: int, blind: bool, question: str | None,
           as_json: bool, db_path: Path | None) -> None:
    """Split the unreviewed answers among reviewers; a seeded share goes to two of them.

    Each reviewer's 'next' in the review app then goes through their own answers (and any
    assigned to nobody), passing over the others'. A double-coded answer stays unreviewed
    for its second reviewer whatever the first decided, neither sees the other's notes, and
    with --blind neither sees the model's proposal. Running it again re-splits what is still
    unreviewed. 'coder eval agreement' reports agreement on the overlap.
    """
    from coder.assign import assign as make_assignment
    from coder.assign import parse_reviewers

    names = parse_reviewers(reviewers)
    with open_store(db_path) as store:
        result = make_assignment(store, names, overlap, seed=seed, blind=blind, question=question)
    if as_json:
        data: dict[str, Any] = {
            "run_id": result.run_id,
            "answers": result.answers,
            "double_coded": result.double_coded,
            "blind": result.blind,
            "seed": result.seed,
            "per_reviewer": dict(result.per_reviewer),
            "per_pair": {"+".join(pair): n for pair, n in result.per_pair.items()},
        }
        click.echo(json.dumps(data, indent=2))
        return
    for line in result.lines():
        console.print(line, highlight=False, markup=False)
    err_console.print("Reviewers: coder review --reviewer NAME", highlight=False)


def print_overlap(overlap: dict[str, Any]) -> None:
    """The overlap section of ``coder eval agreement``: pairs, then model vs each reviewer."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    if not overlap.get("n_double_coded"):
        return

    def fmt(block: dict[str, Any], key: str) -> str:
        value = block.get(key)
        if value is None or value != value:  # NaN: no variation
            return "undef." if value is not None else "-"
        ci = (block.get("ci") or {}).get(key)
        interval = f"\n[dim]{ci[0]:.2f}–{ci[1]:.2f}[/]" if ci and ci[0] == ci[0] else ""
        return f"{value:.2f}{interval}"

    table = Table(title=f"Agreement on the overlap ({overlap['n_double_coded']} double-coded answers; "
                  "95% CIs below; adjud.: left to adjudicate; undef.: no variation)", box=box.SIMPLE_HEAD)
    table.add_column("pair", no_wrap=True)
    for column in ("coded", "adjud.", "themes F1", "stance κ", "stance AC1", "relev. κ"):
        table.add_column(column, justify="right")
    rows = [("+".join(p["reviewers"]), f"{p['both_coded']}/{p['assigned']}", str(p["to_adjudicate"]), p)
            for p in overlap["pairs"]]
    rows += [(f"model/{m['reviewer']}", str(m["n_items"]), "", m) for m in overlap["model"]]
    for name, coded, pending, block in rows:
        themes = block.get("themes", {}).get("f1")
        table.add_row(
            escape(name), coded, pending,
            "-" if themes is None else f"{themes:.2f}",
            fmt(block.get("stance", {}), "kappa"), fmt(block.get("stance", {}), "ac1"),
            fmt(block.get("relevance", {}), "kappa"),
        )
    console.print(table)
