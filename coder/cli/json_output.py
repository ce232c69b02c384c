"""``--json`` and ``--json-file FILE``, the same in every command that prints figures."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from coder.cli.common import F, err_console, tables_to_stderr
from eval.formatting import json_safe


def json_options(what: str) -> Callable[[F], F]:
    """``--json`` (print ``what`` as JSON on stdout, as every coder command's ``--json``
    does; the tables go to stderr) and ``--json-file FILE`` (also write it to a file)."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with tables_to_stderr(bool(kwargs.get("as_json"))):
                return func(*args, **kwargs)

        wrapped = click.option(
            "--json-file",
            "json_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help=f"Also write {what} as JSON to this file.",
        )(wrapper)
        wrapped = click.option(
            "--json",
            "as_json",
            is_flag=True,
            help=f"Print {what} as JSON on stdout (the tables go to stderr).",
        )(wrapped)
        return wrapped  # type: ignore[return-value]

    return decorate


def emit_json(data: dict[str, Any], json_path: Path | None, as_json: bool) -> None:
    """Write ``data`` to ``--json-file`` and/or print it for ``--json``."""
    if json_path:
        _write_json(json_path, data)
        err_console.print(f"Wrote {json_path}", highlight=False, markup=False, soft_wrap=True)
    if as_json:
        click.echo(json.dumps(json_safe(data), indent=2, ensure_ascii=False))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from coder.atomic import write_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_safe(data), indent=2, ensure_ascii=False) + "\n"
    # Atomic: an interrupted run leaves the previous file whole.
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))
