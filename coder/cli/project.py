"""CLI: ``coder import``, ``coder responses`` and ``coder demo``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from coder.cli.common import console, db_option, err_console, handle_errors, open_store, plain
from coder.importer import (
    MAX_CELL_CHARS,
    MAX_UNZIPPED_MB,
    ImportLimits,
    ImportPlan,
    check_reimport,
    parse_column_map,
    plan_import,
    run_import,
    shorten,
)


@click.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--shape", type=click.Choice(["long", "wide"]), default=None,
              help="long: one row per response; wide: one column per question (MS Forms). Default: detect.")
@click.option("--text-column", default=None, help="Column holding the response text (long shape).")
@click.option("--question-column", default=None, help="Column holding the question id (long shape).")
@click.option("--question", default=None, help="Question id for every row (long shape, no question column).")
@click.option("--map", "column_map", multiple=True, metavar="COLUMN=QUESTION",
              help="Wide shape: a column (letter A, B, ..., AA or its exact header) holds answers to a "
                   "question id, e.g. --map \"D=H1\". Repeatable; other columns are still matched to "
                   "the codebook.")
@click.option("--question-columns", default=None,
              help="Comma-separated question columns (wide shape; only these are questions). Headers "
                   "that contain commas, as hypothesis texts do, are recognised only when written in "
                   "full; prefer --map. Default: columns matching the codebook.")
@click.option("--id-column", default=None, help="Column with a stable response id.")
@click.option("--respondent-column", default=None, help="Column with the respondent id.")
@click.option("--attribute", "attributes", multiple=True,
              help="Keep only these columns as respondent attributes (repeatable). Default: all others.")
@click.option("--sheet", default=None, help="XLSX sheet name (default: first).")
@click.option("--encoding", default=None, help="Force a text encoding (default: detect UTF-8 / cp1252).")
@click.option("--allow-unknown-questions", is_flag=True,
              help="Keep questions the codebook does not list (wide files: free-text columns become "
                   "questions named by their header).")
@click.option("--dry-run", is_flag=True, help="Show the column mapping and a preview; write nothing.")
@click.option("--max-cell-chars", type=click.IntRange(min=1), default=MAX_CELL_CHARS, show_default=True,
              help="Refuse a file with a longer cell (protects memory from broken or hostile files).")
@click.option("--max-unzipped-mb", type=click.IntRange(min=1), default=MAX_UNZIPPED_MB, show_default=True,
              help="Refuse an XLSX that unzips to more than this many megabytes (a zip bomb).")
@db_option
@handle_errors
def import_(
    path: Path, shape: str | None, text_column: str | None, question_column: str | None,
    question: str | None, column_map: tuple[str, ...], question_columns: str | None, id_column: str | None,
    respondent_column: str | None, attributes: tuple[str, ...], sheet: str | None,
    encoding: str | None, allow_unknown_questions: bool, dry_run: bool, max_cell_chars: int,
    max_unzipped_mb: int, db_path: Path | None,
) -> None:
    """Import responses from a CSV, XLSX or JSONL file.

    Long files have one response per row (a text column, optionally a question column).
    Wide files, like a Microsoft Forms export, have one column per question; each non-empty
    cell becomes a response. Add the codebook first: wide headers are matched to its
    questions (exactly, then tolerantly; tolerant matches are listed), or name them with
    --map "D=H1". Role and organisation columns become the attributes role, organisation
    and organisation_type. Hashtags in the text (#NHSSomerset) become tags. Re-importing
    a file adds nothing twice; re-importing it under other question ids is refused. A bad
    file changes nothing and names the row and field. Files in UTF-8, Windows-1252, or
    UTF-16 with a byte-order mark (Excel's "Unicode Text") are read without --encoding.
    """
    with open_store(db_path) as store:
        try:
            _, project_codebook = store.codebook()
        except LookupError:
            project_codebook = None
        plan = plan_import(
            path,
            codebook=project_codebook,
            shape=shape,  # type: ignore[arg-type]
            text_column=text_column,
            question_column=question_column,
            id_column=id_column,
            respondent_column=respondent_column,
            question_columns=question_columns,
            column_map=parse_column_map(column_map),
            attribute_columns=list(attributes) or None,
            question=question,
            sheet=sheet,
            encoding=encoding,
            allow_unknown_questions=allow_unknown_questions,
            limits=ImportLimits(max_cell_chars=max_cell_chars, max_unzipped_mb=max_unzipped_mb),
        )
        console.print(
            f"{path}: {plan.shape} shape, encoding {plan.encoding}, {len(plan.responses)} responses",
            highlight=False, soft_wrap=True,
        )
        _print_mapping(plan, full=dry_run)
        for warning in plan.warnings:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
        check_reimport(store, plan)
        if dry_run:
            table = Table("id", "question", "tags", "attributes", "text", title="Preview (first 10)")
            for response in plan.responses[:10]:
                table.add_row(
                    escape(response.id), escape(response.question or ""), escape(" ".join(response.tags)),
                    escape(", ".join(f"{k}={v}" for k, v in response.attributes.items())),
                    escape(response.text[:70] + ("…" if len(response.text) > 70 else "")),
                )
            console.print(table)
            console.print("[yellow]Dry run: nothing written.[/]")
            return
        added, skipped = run_import(store, plan)
    console.print(f"[green]Imported {added} new responses[/] ({skipped} already in the project).")


def _print_mapping(plan: ImportPlan, *, full: bool) -> None:
    """The column mapping: the whole table for a dry run, else a summary plus every
    tolerant match (so a guessed question is never silent)."""
    if full:
        table = Table("col", "header", "→", "how", title="Column mapping")
        for column in plan.columns:
            target = {
                "question": f"question {shorten(column.target, 24)}",
                "attribute": f"attribute {shorten(column.target, 24)}",
                "dropped": "dropped",
            }.get(column.role, column.role)
            how = column.how + (f" ({column.similarity:.2f})" if column.similarity is not None else "")
            table.add_row(column.letter, plain(shorten(column.header, 36)), plain(target), plain(how))
        console.print(table)
        return
    for key, value in plan.mapping.items():
        if key == "columns":
            continue
        if key == "questions" and isinstance(value, dict):
            value = ", ".join(shorten(q) for q in dict.fromkeys(value.values()))
        console.print(plain(f"  {key}: {value}"), highlight=False, soft_wrap=True)
    recognised = [c for c in plan.columns if c.role == "attribute" and c.how.startswith("recognised")]
    for column in recognised:
        console.print(plain(f"  {column.letter} {column.header!r} → attribute {column.target}"),
                      highlight=False, soft_wrap=True)
    for column in plan.tolerant_matches():
        similarity = f", similarity {column.similarity:.2f}" if column.similarity is not None else ""
        header = column.header if len(column.header) <= 70 else column.header[:69] + "…"
        console.print(plain(f"  {column.letter} {header!r} → {column.target} ({column.how}{similarity})"),
                      highlight=False, soft_wrap=True)


@click.command("responses")
@click.option("--question", default=None, help="Only this question.")
@click.option("--limit", type=int, default=20, show_default=True, help="Most responses listed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@db_option
@handle_errors
def responses(question: str | None, limit: int, as_json: bool, db_path: Path | None) -> None:
    """List stored responses."""
    with open_store(db_path) as store:
        rows = []
        for index, response in enumerate(store.responses(question=question)):
            if index >= limit:
                break
            rows.append(response)
        total = store.count_responses()
    if as_json:
        for response in rows:
            click.echo(response.model_dump_json())
        return
    table = Table("id", "question", "tags", "text", title=f"{len(rows)} of {total} responses")
    for response in rows:
        table.add_row(
            plain(response.id), plain(response.question), plain(" ".join(response.tags)), plain(response.text[:90])
        )
    console.print(table)


@click.command("demo")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("coder-demo.db"), show_default=True, help="Demo project file to create.")
@click.option("--fresh/--keep", default=True, help="Start from an empty demo project (default).")
@handle_errors
def demo(db_path: Path, fresh: bool) -> None:
    """Run the whole loop offline on illustrative workshop responses.

    Creates a demo project with the built-in codebook and demo responses, pre-codes them
    with the embedded offline classifier, and writes a report. Then try
    'coder review --db coder-demo.db --reviewer you'.
    """
    from coder.demo import run_demo

    run_demo(db_path, fresh=fresh, console=console)
