"""``python -m coder``: the same as the ``coder`` command."""

from coder.cli import cli

if __name__ == "__main__":
    cli(prog_name="coder")
