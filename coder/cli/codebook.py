"""CLI: ``coder codebook`` (check, add, show, versions, schema, example, convert, import-qdc)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from coder.cli.common import (
    console,
    db_option,
    err_console,
    handle_errors,
    open_store,
    write_output_text,
)
from coder.codebook import (
    builtin_codebook_path,
    check_codebook_data,
    codebook_json_schema,
    codebook_to_yaml,
    from_gold_format,
    is_gold_format,
    load_codebook,
    read_codebook_file,
    theme_overlap,
)
from coder.errors import BackendError, CoderError
from schemas import Codebook

#: ``--out FILE`` of the commands that print a file's text by default
out_option = click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (default: print).",
)


def print_or_write(text: str, out: Path | None) -> None:
    """Print ``text`` as it is, or write it to ``out`` (atomically; "Wrote" on stderr)."""
    if out:
        write_output_text(out, text)
        err_console.print(f"Wrote {out}", highlight=False, markup=False, soft_wrap=True)
    else:
        click.echo(text, nl=False)

@click.group()
def codebook() -> None:
    """Check, add and show codebooks (YAML, JSON or gold-set codebook.json)."""


@codebook.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--overlap/--no-overlap", default=True, show_default=True,
              help="Also warn about pairs of themes whose texts overlap (offline encoder).")
@handle_errors
def codebook_check(path: Path, overlap: bool) -> None:
    """Validate a codebook file and report every problem at once.

    Checks duplicate ids, unknown parents, parent cycles, themes applying to unknown
    questions and empty definitions, naming the path to each bad field. Then warns (exit
    status 0) about pairs of themes whose label, definition and include criteria are
    unusually similar for this codebook, which reviewers and classifiers will confuse;
    a sub-theme and its parent overlap by design and are not compared.
    """
    data = read_codebook_file(path)
    if is_gold_format(data):
        data = from_gold_format(data)
    problems = check_codebook_data(data)
    if problems:
        err_console.print(f"[bold red]{path}[/]: {len(problems)} problem(s)", highlight=False, soft_wrap=True)
        for problem in problems:
            err_console.print(f"  {path}: {problem}", highlight=False, markup=False, soft_wrap=True)
        raise SystemExit(1)
    loaded = load_codebook(path)
    console.print(
        f"[green]OK[/] {path}: {len(loaded.questions)} questions, {len(loaded.themes)} themes, "
        f"stance scale: {', '.join(loaded.stance_ids) or 'none'}",
        highlight=False,
        soft_wrap=True,  # a long path must not break the line (or scripts reading it)
    )
    if overlap:
        _print_overlap(path, loaded)


def _print_overlap(path: Path, loaded: Codebook) -> None:
    """Warnings for overlapping themes (stderr); the check itself is in coder.codebook."""
    try:
        result = theme_overlap(loaded)
    except BackendError as error:
        err_console.print(f"[yellow]warning:[/] overlap check skipped: {escape(str(error))}",
                          highlight=False, soft_wrap=True)
        return
    if not result.pairs:
        console.print(
            f"No overlapping themes ({result.compared} pairs compared, threshold {result.threshold:.2f}).",
            highlight=False, soft_wrap=True,
        )
        return
    err_console.print(
        f"[yellow]warning:[/] {path}: {len(result.pairs)} pair(s) of themes overlap (similarity of "
        f"label, definition and include criteria at least {result.threshold:.2f}, where this "
        f"codebook's median pair is {result.median:.2f}); sharpen their definitions or "
        "exclude criteria, or merge them:",
        highlight=False, soft_wrap=True,
    )
    for first, second, similarity in result.pairs:
        err_console.print(f"  {similarity:.2f}  {first}  ~  {second}", highlight=False, markup=False, soft_wrap=True)


@codebook.command("add")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--example", is_flag=True, help="Add the built-in example codebook.")
@db_option
@handle_errors
def codebook_add(path: Path | None, example: bool, db_path: Path | None) -> None:
    """Add a codebook to the project; a changed codebook becomes a new version."""
    if example or path is None:
        if path is None and not example:
            raise CoderError("give a codebook FILE, or --example for the built-in one")
        path = builtin_codebook_path()
    loaded = load_codebook(path)
    with open_store(db_path) as store:
        before = {row["version"] for row in store.codebook_versions()}
        version = store.save_codebook(loaded, source=str(path))
    state = "unchanged, still" if version in before else "added as"
    console.print(f"Codebook {loaded.name!r} {state} version {version} ({len(loaded.themes)} themes).")


@codebook.command("show")
@click.option("--version", "version", type=int, default=None, help="Version (default: latest).")
@click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Show a codebook file instead of the project's.")
@db_option
@handle_errors
def codebook_show(version: int | None, file: Path | None, db_path: Path | None) -> None:
    """Show a codebook as a tree of questions and themes."""
    if file is not None:
        loaded, label = load_codebook(file), str(file)
    else:
        with open_store(db_path) as store:
            try:
                number, loaded = store.codebook(version)
            except LookupError as error:
                raise CoderError(str(error)) from None
        label = f"version {number}"
    print_codebook(loaded, label)


def print_codebook(loaded: Codebook, label: str) -> None:
    tree = Tree(f"[bold]{loaded.name}[/] ({label})")
    questions = tree.add("Questions")
    for question in loaded.questions:
        questions.add(f"[cyan]{question.id}[/] {question.short_name or ''}".rstrip())
    themes = tree.add("Themes")
    nodes: dict[str, Tree] = {}
    for theme in loaded.themes:
        parent = nodes.get(theme.parent, themes) if theme.parent else themes
        scope = ", ".join(theme.questions) if theme.questions else "all"
        nodes[theme.id] = parent.add(f"[green]{theme.id}[/] {theme.label} [dim]({scope})[/]")
    if loaded.stance:
        tree.add("Stance: " + " / ".join(loaded.stance.ids))
    console.print(tree)


@codebook.command("versions")
@db_option
@handle_errors
def codebook_versions(db_path: Path | None) -> None:
    """List the codebook versions stored in the project."""
    with open_store(db_path) as store:
        table = Table("version", "name", "hash", "source", "created")
        for row in store.codebook_versions():
            table.add_row(str(row["version"]), row["name"], row["hash"][:12], row["source"] or "", row["created_at"])
    console.print(table)


@codebook.command("schema")
@out_option
@handle_errors
def codebook_schema(out: Path | None) -> None:
    """Print (or write) the JSON Schema of the codebook file format."""
    text = json.dumps(codebook_json_schema(), indent=2) + "\n"
    print_or_write(text, out)


@codebook.command("example")
@out_option
@handle_errors
def codebook_example(out: Path | None) -> None:
    """Print (or write) the built-in example codebook, to start your own from."""
    text = builtin_codebook_path().read_text(encoding="utf-8")
    print_or_write(text, out)


@codebook.command("convert")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@out_option
@handle_errors
def codebook_convert(path: Path, out: Path | None) -> None:
    """Convert a codebook (e.g. a gold-set codebook.json) to coder's YAML."""
    text = codebook_to_yaml(load_codebook(path))
    print_or_write(text, out)


@codebook.command("import-qdc")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the codebook as YAML here (default: print it).",
)
@click.option("--name", default=None, help="Codebook name (default: the file name).")
@handle_errors
def import_qdc(path: Path, out_path: Path | None, name: str | None) -> None:
    """Convert a REFI-QDA codebook (.qdc from NVivo, ATLAS.ti, MAXQDA, QualCoder) to a coder
    codebook: nested codes become themes with a parent, descriptions become definitions."""
    from coder.codebook import codebook_to_yaml
    from coder.refi_qda import qdc_to_codebook

    codebook = qdc_to_codebook(path.read_bytes(), name=name or path.stem, source=str(path))
    text = codebook_to_yaml(codebook)
    if out_path is None:
        click.echo(text)
        return
    write_output_text(out_path, text)
    err_console.print(
        f"Wrote {out_path}: {len(codebook.themes)} themes (add questions before use)",
        highlight=False,
        markup=False,
    )
