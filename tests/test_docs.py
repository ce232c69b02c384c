"""Cheap guards against drifting docs: every command has help, and the README names it."""

from __future__ import annotations

import click
import pytest

from coder.cli import cli
from tests.conftest import REPO


def walk(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
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
            assert param.help or param.is_flag is False or param.name in {"help"}, (
                f"option {param.opts} of 'coder {' '.join(path)}' has no help"
            )


def test_readme_mentions_every_top_level_command() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [name for name in cli.commands if f"coder {name}" not in readme]
    assert not missing, f"README.md does not mention: {missing}"
