"""The ``coder`` command line: a thin layer over the library.

Each area keeps its commands in its own module (``cli_*.py``); this file only
assembles them.
"""

from __future__ import annotations

import click

from coder import __version__


@click.group()
@click.version_option(__version__, prog_name="coder")
def cli() -> None:
    """coder: LLM-assisted qualitative coding of free-text responses, with a human in the loop.

    A project is one SQLite file (--db, default ./coder.db or $CODER_DB).
    Start with 'coder demo', or: coder codebook add CODEBOOK.yaml; coder import RESPONSES.csv;
    coder precode; coder review --reviewer NAME; coder report.
    """


# --- command registration: one import + add_command per area module -----------------
from coder.cli_foundation import codebook, demo, import_, responses, status  # noqa: E402

cli.add_command(codebook)
cli.add_command(import_)
cli.add_command(responses)
cli.add_command(status)
cli.add_command(demo)
# --- end of command registration ----------------------------------------------------
