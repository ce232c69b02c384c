"""Cheap guards against drifting docs: every command has help, and the README names it."""

from __future__ import annotations

import click
import pytest

from coder.cli import COMMANDS as TOP_LEVEL
from coder.cli import cli, load_command
from tests.conftest import REPO


def walk(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        path = (*prefix, name)
        found.append((path, command))
        if isinstance(command, click.Group):
            found.extend(walk(command, path))
    return found


COMMANDS = walk(cli)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help(path: tuple[str, ...], command: click.Command) -> None:
    assert (command.help or "").strip(), f"'coder {' '.join(path)}' has no docstring/help"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"option {param.opts} of 'coder {' '.join(path)}' has no help"


def test_readme_mentions_every_top_level_command() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [name for name in TOP_LEVEL if f"coder {name}" not in readme]
    assert not missing, f"README.md does not mention: {missing}"


@pytest.mark.parametrize("name", sorted(TOP_LEVEL))
def test_the_listed_summary_is_the_commands_own(name: str) -> None:
    # `coder --help` lists commands without importing them, from coder/cli/__init__.py.
    assert TOP_LEVEL[name][2] == load_command(name).get_short_help_str(limit=10**6)
