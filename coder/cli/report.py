"""CLI: ``coder report``, ``coder export`` and ``coder discover``."""

from __future__ import annotations

from pathlib import Path

import click

from coder.cli.common import console, db_option, err_console, handle_errors, open_store
from coder.errors import CoderError

REPORT_FORMATS = ("md", "html", "xlsx")
EXPORT_FORMATS = ("csv", "jsonl", "xlsx", "qdpx", "qdc")


def _formats(value: str) -> list[str]:
    formats = [part.strip().lower() for part in value.split(",") if part.strip()]
    unknown = [fmt for fmt in formats if fmt not in REPORT_FORMATS]
    if unknown or not formats:
        raise click.BadParameter(
            f"unknown format(s) {', '.join(unknown) or '(none)'}; choose from {','.join(REPORT_FORMATS)}"
        )
    return formats


@click.command("report")
@db_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("report"),
    show_default=True,
    help="Folder for the report files.",
)
@click.option(
    "--format",
    "formats",
    default="md,html,xlsx",
    show_default=True,
    help="Comma-separated formats: md, html, xlsx.",
)
@click.option(
    "--attribution-field",
    default=None,
    help="Response attribute that names who said a quote, in place of the role "
    "(default: role, else job_role, job_title, stakeholder; the organisation follows it). "
    "An attribute no response has is an error listing those there are.",
)
@click.option(
    "--max-quotes",
    default=3,
    show_default=True,
    type=click.IntRange(min=0),
    help="Quotes per question (never a stance-only answer, never the same text twice, "
    "one per person while others are left).",
)
@click.option("--title", default=None, help="Report title (default: the codebook's name).")
@click.option(
    "--codebook-version", type=int, default=None, help="Codebook version (default: latest)."
)
@handle_errors
def report(
    db_path: Path | None,
    out_dir: Path,
    formats: str,
    attribution_field: str | None,
    max_quotes: int,
    title: str | None,
    codebook_version: int | None,
) -> None:
    """Write the rapid-insight report: per question, the stance split, a mind map of themes
    and sub-themes with n= counts, attributed quotes, and summary statistics.

    Reviewed labels count where they exist; elsewhere the model's proposal counts, and every
    section says how many labels are human-reviewed vs model-only.
    """
    from coder.report import write_report
    from coder.store import now

    chosen = _formats(formats)
    if out_dir.suffix.lower() in (".md", ".html", ".htm", ".xlsx") and not out_dir.is_dir():
        # `--out report.html` used to create a folder named report.html.
        raise click.BadParameter(
            f"{out_dir} looks like a file name, but --out is the folder for report.md, "
            "report.html and report.xlsx: give a folder (e.g. --out report/) and pick formats "
            "with --format",
            param_hint="'--out'",
        )
    with open_store(db_path) as store:
        try:
            report_data, paths = write_report(
                store,
                out_dir,
                chosen,
                attribution_field=attribution_field,
                max_quotes=max_quotes,
                title=title,
                codebook_version=codebook_version,
                generated_at=now()[:16].replace("T", " ") + " UTC",
            )
        except LookupError as error:
            raise CoderError(str(error)) from error
    for path in paths:
        err_console.print(f"Wrote {path}", highlight=False, markup=False, soft_wrap=True)
    console.print(report_data.summary.sentence)
    console.print(report_data.status.line())


@click.command("export")
@db_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    default=None,
    help="Output format (default: from the --out suffix). qdpx = REFI-QDA project, "
    "qdc = REFI-QDA codebook.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Output file.",
)
@handle_errors
def export(db_path: Path | None, fmt: str | None, out_path: Path) -> None:
    """Export every response with its final labels, the model's proposal, reviewer, times,
    confidence and notes (CSV, JSONL, XLSX), or the project for NVivo / ATLAS.ti / MAXQDA /
    QualCoder as REFI-QDA (.qdpx project, .qdc codebook).

    CSV cells that a spreadsheet would run as a formula (starting with = + - @, tab or CR)
    get a leading ' (removed again by 'coder import'); XLSX cells are always text, and
    control characters XML cannot hold (ESC, vertical tab...) appear there and in REFI-QDA
    files as U+FFFD. Rows are streamed, so a large project exports in little memory. The
    file is written atomically, and never over the project or any other SQLite file; on a
    full disk the old file is left as it was."""
    from coder.export import export as export_table
    from coder.export import export_refi_qda

    fmt = (fmt or out_path.suffix.lstrip(".")).lower()
    with open_store(db_path) as store:
        if fmt in ("qdpx", "qdc"):
            what = export_refi_qda(store, out_path, fmt)
            err_console.print(f"Wrote {out_path}: {what}", highlight=False, markup=False, soft_wrap=True)
            return
        count = export_table(store, out_path, fmt)
    err_console.print(
        f"Wrote {out_path}: {count} responses", highlight=False, markup=False, soft_wrap=True
    )


# --- discover -------------------------------------------------------------------------------
@click.group("discover", invoke_without_command=True)
@db_option
@click.option(
    "--threshold",
    default=0.5,
    show_default=True,
    type=float,
    help="Model proposals below this confidence count as not covered well.",
)
@click.option("--question", default=None, help="Only responses to this question id.")
@click.option("--max-clusters", default=8, show_default=True, type=int, help="Most candidate themes proposed.")
@click.option("--min-size", default=2, show_default=True, type=int, help="Smallest cluster kept.")
@click.option(
    "--backend",
    type=click.Choice(["local", "openai"]),
    default="local",
    show_default=True,
    help="local: name clusters from their terms (offline); openai: an LLM names them.",
)
@click.option("--model", default=None, help="LLM model for --backend openai.")
@click.option(
    "--base-url", default=None, help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)."
)
@click.pass_context
@handle_errors
def discover(
    ctx: click.Context,
    db_path: Path | None,
    threshold: float,
    question: str | None,
    max_clusters: int,
    min_size: int,
    backend: str,
    model: str | None,
    base_url: str | None,
) -> None:
    """Propose candidate new themes from responses the codebook does not cover well
    (no theme, low confidence, or a theme the model suggested), by clustering them.

    Then: coder discover list / accept ID / rename ID LABEL / merge ID ID... / reject ID.
    """
    ctx.ensure_object(dict)
    ctx.obj["db_path"] = db_path
    if ctx.invoked_subcommand is not None:
        return
    from coder import discover as discovery

    namer, method = None, None
    if backend == "openai":
        if not model:
            raise CoderError("--backend openai needs --model")
        namer = discovery.llm_namer(model, base_url)
        method = f"agglomerative+llm:{model}"
    with open_store(db_path) as store:
        found = discovery.discover(
            store,
            threshold=threshold,
            max_k=max_clusters,
            min_size=min_size,
            question=question,
            namer=namer,
            method=method,
        )
    if not found:
        console.print("No candidate themes: too few responses are poorly covered by the codebook.")
        return
    _print_candidates(found)
    console.print("Review them: coder discover accept ID [--label ... --id ... --parent ...]")


def _print_candidates(items: list) -> None:  # list[Candidate]
    from rich.table import Table

    table = Table("id", "status", "n", "label", "definition", "example")
    for item in items:
        example = item.examples[0] if item.examples else ""
        table.add_row(
            str(item.id),
            item.status,
            str(item.count),
            item.label,
            item.definition,
            example[:80] + ("…" if len(example) > 80 else ""),
        )
    console.print(table)


def _db(ctx: click.Context, db_path: Path | None) -> Path | None:
    return db_path or (ctx.obj or {}).get("db_path")


@discover.command("list")
@db_option
@click.option(
    "--status",
    type=click.Choice(["proposed", "accepted", "rejected", "merged"]),
    default=None,
    help="Only candidates with this status.",
)
@click.pass_context
@handle_errors
def discover_list(ctx: click.Context, db_path: Path | None, status: str | None) -> None:
    """List stored candidate themes."""
    from coder import discover as discovery

    with open_store(_db(ctx, db_path)) as store:
        _print_candidates(discovery.candidates(store, status))


@discover.command("accept")
@click.argument("candidate_id", type=int)
@click.option("--label", default=None, help="Theme label (default: the candidate's).")
@click.option("--id", "theme_id", default=None, help="Theme id (default: from the label).")
@click.option("--parent", default=None, help="Make it a sub-theme of this theme id.")
@click.option("--definition", default=None, help="Theme definition (default: the candidate's).")
@db_option
@click.pass_context
@handle_errors
def discover_accept(
    ctx: click.Context,
    candidate_id: int,
    label: str | None,
    theme_id: str | None,
    parent: str | None,
    definition: str | None,
    db_path: Path | None,
) -> None:
    """Add a candidate to the codebook as a new theme (a new codebook version)."""
    from coder import discover as discovery

    with open_store(_db(ctx, db_path)) as store:
        try:
            version, theme = discovery.accept(
                store,
                candidate_id,
                label=label,
                theme_id=theme_id,
                parent=parent,
                definition=definition,
            )
        except LookupError as error:
            raise CoderError(str(error)) from error
    console.print(f"Added theme {theme.id!r} ({theme.label}) as codebook version {version}.")
    console.print("Re-propose labels against it with: coder precode --redo")


@discover.command("rename")
@click.argument("candidate_id", type=int)
@click.argument("label")
@click.option("--definition", default=None, help="A new definition too.")
@db_option
@click.pass_context
@handle_errors
def discover_rename(
    ctx: click.Context, candidate_id: int, label: str, definition: str | None, db_path: Path | None
) -> None:
    """Rename a candidate theme."""
    from coder import discover as discovery

    with open_store(_db(ctx, db_path)) as store:
        item = discovery.rename(store, candidate_id, label, definition)
    console.print(f"Candidate {item.id} is now {item.label!r}.")


@discover.command("merge")
@click.argument("candidate_ids", type=int, nargs=-1, required=True)
@db_option
@click.pass_context
@handle_errors
def discover_merge(
    ctx: click.Context, candidate_ids: tuple[int, ...], db_path: Path | None
) -> None:
    """Merge candidates into the first id given."""
    from coder import discover as discovery

    with open_store(_db(ctx, db_path)) as store:
        item = discovery.merge(store, list(candidate_ids))
    console.print(f"Merged into candidate {item.id} ({item.label}): n={item.count}.")


@discover.command("reject")
@click.argument("candidate_id", type=int)
@db_option
@click.pass_context
@handle_errors
def discover_reject(ctx: click.Context, candidate_id: int, db_path: Path | None) -> None:
    """Reject a candidate theme."""
    from coder import discover as discovery

    with open_store(_db(ctx, db_path)) as store:
        discovery.reject(store, candidate_id)
    console.print(f"Rejected candidate {candidate_id}.")
