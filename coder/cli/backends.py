"""CLI: ``coder backends`` (the classifier backends this install can use, plugins included)."""

from __future__ import annotations

import json

import click
from rich.table import Table

from coder.cli.common import console, handle_errors


@click.command("backends")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def backends(as_json: bool) -> None:
    """List the classifier backends: the built-in 'local' and 'openai', and any plugin's.

    A package adds a backend by declaring an entry point in the 'coder.backends' group
    (see docs/plugins.md); its name then works with --backend in precode and eval.
    """
    from coder.backends.registry import available_backends

    found = available_backends()
    if as_json:
        rows = [
            {"name": b.name, "target": b.target, "provider": b.provider} for b in found.values()
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("name", "provided by", "target")
    for info in found.values():
        table.add_row(info.name, "coder (built in)" if info.built_in else info.provider, info.target)
    console.print(table)


class BackendChoice(click.ParamType):
    """``--backend NAME``: a registered backend, checked when used (plugins included)."""

    name = "backend"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[local|openai|PLUGIN]"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from coder.backends.registry import backend_names

        names = backend_names()
        if value not in names:
            self.fail(
                f"{value!r} is not a backend here: choose one of {', '.join(names)} "
                "('coder backends' lists them)",
                param,
                ctx,
            )
        return str(value)


def parse_plugin_options(pairs: tuple[str, ...]) -> dict[str, str]:
    """``-o key=value`` pairs for a plugin backend, as a dict (values stay strings)."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="-o/--option")
        options[key.strip()] = value
    return options
