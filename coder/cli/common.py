"""Options and helpers shared by every CLI command (kept tiny: the CLI is thin)."""

from __future__ import annotations

import functools
import logging
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from coder.atomic import is_sqlite_file
from coder.cells import safe_for_terminal
from coder.errors import CoderError
from coder.store import Store, default_db_path, describe_sqlite_error

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)


@contextmanager
def tables_to_stderr(active: bool) -> Iterator[None]:
    """With ``--json`` stdout carries the JSON alone: what would print as tables goes to
    stderr meanwhile (``console`` follows ``sys.stdout`` again afterwards)."""
    if not active:
        yield
        return
    console.file = sys.stderr
    try:
        yield
    finally:
        console.file = None  # type: ignore[assignment]  # rich: None means sys.stdout


def write_output_text(path: Path, text: str) -> None:
    """Write a command's text output file atomically, refusing to overwrite a project or any
    SQLite file (an interrupted write leaves the previous file whole)."""
    from coder.atomic import check_output_path, write_atomically

    check_output_path(path)
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def quiet_library_logs() -> None:
    """Silence the LLM client libraries' own logging of failed attempts.

    instructor logs every failed attempt at ERROR, with the whole error body; our retry
    layer handles them and ``llm_calls`` records them, so on the console they would only
    repeat each failure twice and break progress bars. Commands report failures themselves.
    """
    for name in ("instructor", "httpx", "httpx2", "openai"):
        logger = logging.getLogger(name)
        logger.addHandler(logging.NullHandler())
        logger.propagate = False


def plain(text: str | None) -> Text:
    """User text as a table cell or line: no Rich markup, no terminal control characters
    (a response saying ``[link=…]`` or ``\x1b[2J`` is shown, not obeyed)."""
    return Text(safe_for_terminal(text or ""))


def db_option(func: F) -> F:
    """``--db PATH``: the project file (default ``$CODER_DB`` or ``./coder.db``)."""
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Project database file (default: $CODER_DB or ./coder.db).",
    )(func)


def repeatable_option(*names: str, metavar: str, help: str) -> Callable[[F], F]:
    """An option given as often as needed (``--min a=1 --min b=2``): a tuple of texts, each
    of the form ``metavar`` (e.g. ``PATH=VALUE``). ``names``: its flags, then its parameter."""
    return click.option(*names, multiple=True, metavar=metavar, help=help)


def value_option(flag: str, kind: Any, help: str) -> Callable[[F], F]:
    """An optional setting of type ``kind``: None when not given (the library's default,
    which ``help`` names, then applies)."""
    return click.option(flag, type=kind, default=None, help=help)


def existing_file_option(flag: str, name: str, help: str) -> Callable[[F], F]:
    """An option naming a file that must exist (an input: gold items, predictions...)."""
    return click.option(
        flag, name, type=click.Path(exists=True, dir_okay=False, path_type=Path), help=help
    )


def count_option(flag: str, help: str) -> Callable[[F], F]:
    """How many runs of the backend (``--repeat``, ``--samples``): at least 1, default 1."""
    return click.option(
        flag, type=click.IntRange(min=1), default=1, show_default=True, help=help
    )


#: Commands that may start a new project file; every other command needs an existing one
#: (``coder status --db typo.db`` must not leave an empty project behind).
CREATING_COMMANDS = frozenset(
    {"import", "codebook add", "demo", "train", "eval", "agree"}
)


def _command_name() -> str | None:
    """The running sub-command ('status', 'codebook show'), or None outside click."""
    context = click.get_current_context(silent=True)
    names = []
    while context is not None and context.parent is not None:
        names.append(context.info_name or "")
        context = context.parent
    return " ".join(reversed(names)) or None


def project_path(db_path: Path | None) -> Path:
    """The project file: the command's --db, else ``coder --db`` before the command, else
    $CODER_DB or ./coder.db."""
    if db_path is not None:
        return db_path
    context = click.get_current_context(silent=True)
    given = context.find_root().meta.get("coder.db") if context is not None else None
    return Path(given) if given is not None else default_db_path()


def open_store(db_path: Path | None, *, create: bool | None = None) -> Store:
    """Open the project store.

    ``create`` says whether a missing file may be created; by default only the commands in
    :data:`CREATING_COMMANDS` may, so a read command on a mistyped path fails with a clear
    message instead of creating an empty project. A file that is not an SQLite database is
    refused before SQLite touches it.
    """
    path = project_path(db_path)
    if create is None:
        name = _command_name()
        create = name is None or name in CREATING_COMMANDS
    if not path.exists():
        if not create:
            raise CoderError(
                f"{path}: no such project file, so there is no codebook and there are no "
                "responses to read. Check the path (--db or $CODER_DB); a project is created by "
                "'coder codebook add', 'coder import' or 'coder demo'"
            )
    elif path.is_file() and path.stat().st_size > 0 and not is_sqlite_file(path):
        raise CoderError(f"{path}: not a coder project (not an SQLite database file)")
    elif path.is_file() and path.stat().st_size == 0 and not create:
        # Opening would turn the empty file into a project: a read command never writes one.
        raise CoderError(
            f"{path}: the file is empty (0 bytes), not a coder project yet, so there is nothing "
            "to read. Check the path (--db or $CODER_DB); a project is created by 'coder "
            "codebook add', 'coder import' or 'coder demo'"
        )
    return Store(path)


def handle_errors(func: F) -> F:
    """Turn :class:`CoderError` into a clear message and exit code 1, without a traceback.

    An SQLite error that escapes the library (the project file turned read-only, locked
    past the busy timeout, damaged or on a full disk while a command ran) is reported the
    same way, naming the project file: SQLite has already rolled the transaction back.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CoderError as error:
            _print_error(str(error))
        except sqlite3.Error as error:
            _print_error(describe_sqlite_error(project_path(kwargs.get("db_path")), error))

    return wrapper  # type: ignore[return-value]


def _print_error(message: str) -> None:
    err_console.print("[bold red]Error:[/]", end=" ")
    err_console.print(message, highlight=False, markup=False, soft_wrap=True)
    sys.exit(1)
