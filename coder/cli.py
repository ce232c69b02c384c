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
from coder.cli_report import discover, export, report  # noqa: E402

cli.add_command(report)
cli.add_command(export)
cli.add_command(discover)
from coder.cli_review import review  # noqa: E402

cli.add_command(review)
from coder.cli_precode import precode_command  # noqa: E402

cli.add_command(precode_command)
from coder.cli_eval import agree, eval_  # noqa: E402

cli.add_command(agree)
cli.add_command(eval_)
from coder.cli_train import train  # noqa: E402

cli.add_command(train)
from coder.cli_models import models  # noqa: E402

cli.add_command(models)
from coder.cli_doctor import doctor  # noqa: E402

cli.add_command(doctor)
from coder.cli_backends import backends  # noqa: E402

cli.add_command(backends)
# --- end of command registration ----------------------------------------------------
