"""The ``coder`` command line: a thin face over the library, one module per command group.

Commands load lazily: ``coder --help`` lists them from :data:`COMMANDS` without importing
their modules (which pull in the store, pydantic models and the classifiers), and a
command's module is imported only when that command runs. A test keeps each summary
equal to the command's own docstring.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from coder import __version__

#: name -> (module, attribute, one-line summary: the first sentence of its docstring)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "agree": (
        "coder.cli.agree",
        "agree",
        "Agreement between coders, from a long-format CSV or JSONL file of (coder, item, label) rows.",
    ),
    "assign": (
        "coder.cli.team",
        "assign",
        "Split the unreviewed answers among reviewers; a seeded share goes to two of them.",
    ),
    "backends": (
        "coder.cli.backends",
        "backends",
        "List the classifier backends: the built-in 'local' and 'openai', and any plugin's.",
    ),
    "codebook": (
        "coder.cli.codebook",
        "codebook",
        "Check, add and show codebooks (YAML, JSON or gold-set codebook.json).",
    ),
    "demo": (
        "coder.cli.project",
        "demo",
        "Run the whole loop offline on illustrative workshop responses.",
    ),
    "discover": (
        "coder.cli.report",
        "discover",
        "Propose candidate new themes from responses the codebook does not cover well (no theme, low confidence, or a theme the model suggested), by clustering them.",
    ),
    "doctor": (
        "coder.cli.doctor",
        "doctor",
        "Check a project file without changing it: SQLite integrity, schema version, and how trained models are stored (legacy pickled models are reported as unsafe).",
    ),
    "eval": (
        "coder.cli.evaluate",
        "eval_",
        "Score a classifier against a gold-coded set (coder eval GOLD_FOLDER, or --codebook/--items).",
    ),
    "export": (
        "coder.cli.report",
        "export",
        "Export every response with its final labels, the model's proposal, reviewer, times, confidence and notes (CSV, JSONL, XLSX), or the project for NVivo / ATLAS.ti / MAXQDA / QualCoder as REFI-QDA (.qdpx project, .qdc codebook).",
    ),
    "import": (
        "coder.cli.project",
        "import_",
        "Import responses from a CSV, XLSX or JSONL file.",
    ),
    "merge": (
        "coder.cli.team",
        "merge",
        "Bring another copy's decisions, proposals, codebook versions and models into this project.",
    ),
    "models": (
        "coder.cli.models",
        "models",
        "List the project's trained models: version, when, storage format, encoder, what "
        "each was trained on (labels per field, codebook version, seed, library versions), "
        "its cross-validated figures and which one is active.",
    ),
    "precode": (
        "coder.cli.precode",
        "precode_command",
        "Propose labels for responses that have none for the current codebook version.",
    ),
    "report": (
        "coder.cli.report",
        "report",
        "Write the rapid-insight report: per question, the stance split, a mind map of themes and sub-themes with n= counts, attributed quotes, and summary statistics.",
    ),
    "responses": (
        "coder.cli.project",
        "responses",
        "List stored responses.",
    ),
    "review": (
        "coder.cli.review",
        "review",
        "Review the model's proposals one response at a time (a terminal UI).",
    ),
    "reviewers": (
        "coder.cli.serve",
        "reviewers_group",
        "Add, list and revoke the reviewers who may sign in to 'coder serve'.",
    ),
    "serve": (
        "coder.cli.serve",
        "serve",
        "Serve the review app to browsers: one app process per signed-in reviewer.",
    ),
    "status": (
        "coder.cli.status",
        "status",
        "Show where the project stands: responses, proposals, reviews.",
    ),
    "train": (
        "coder.cli.train",
        "train",
        "Train the local (offline) classifier and re-propose unreviewed responses.",
    ),
}


def load_command(name: str) -> click.Command:
    """Import and return the command registered as ``name``."""
    module_name, attribute, _ = COMMANDS[name]
    command = getattr(importlib.import_module(module_name), attribute)
    assert isinstance(command, click.Command)
    return command


def _shorten(text: str, width: int) -> str:
    """``text`` cut at a word to fit ``width`` columns, as click cuts a command's help."""
    if len(text) <= width:
        return text
    return text[: width - 3].rsplit(" ", 1)[0].rstrip(",;:") + "..."


class LazyGroup(click.Group):
    """A group whose sub-commands are imported when used, not when listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        return load_command(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        width = formatter.width - 6 - max(len(name) for name in COMMANDS)
        for name in sorted(COMMANDS):
            summary = COMMANDS[name][2]
            rows.append((name, _shorten(summary, max(width, 20))))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _remember_db(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    # `coder --db x.db codebook add ...`: the sub-command's own --db wins when both are given.
    if value is not None:
        ctx.meta["coder.db"] = value
    return value


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="coder")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    expose_value=False,
    callback=_remember_db,
    help="Project database file for the command (default: $CODER_DB or ./coder.db).",
)
def cli() -> None:
    """coder: LLM-assisted qualitative coding of free-text responses, with a human in the loop.

    A project is one SQLite file (--db, default ./coder.db or $CODER_DB).
    Start with 'coder demo', or: coder codebook add CODEBOOK.yaml; coder import RESPONSES.csv;
    coder precode; coder review --reviewer NAME; coder report.
    """


def main() -> None:
    """The console-script entry point."""
    cli(prog_name="coder")
