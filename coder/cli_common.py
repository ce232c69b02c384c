"""Options and helpers shared by every CLI command (kept tiny: the CLI is thin)."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from coder.errors import CoderError
from coder.store import Store, default_db_path

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)


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


def db_option(func: F) -> F:
    """``--db PATH``: the project file (default ``$CODER_DB`` or ``./coder.db``)."""
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Project database file (default: $CODER_DB or ./coder.db).",
    )(func)


def open_store(db_path: Path | None) -> Store:
    """Open (creating if needed) the project store."""
    return Store(db_path or default_db_path())


def handle_errors(func: F) -> F:
    """Turn :class:`CoderError` into a clear message and exit code 1, without a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CoderError as error:
            err_console.print("[bold red]Error:[/]", end=" ")
            err_console.print(str(error), highlight=False, markup=False, soft_wrap=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
