"""CLI: ``coder doctor``."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from coder.cli.common import console, db_option, handle_errors, project_path

_STYLE = {"ok": "green", "warning": "yellow", "problem": "bold red"}


@click.command("doctor")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@handle_errors
def doctor(db_path: Path | None, as_json: bool) -> None:
    """Check a project file without changing it: SQLite integrity, schema version, and how
    trained models are stored (legacy pickled models are reported as unsafe). Exits 1 if
    anything is wrong."""
    from coder.doctor import check_project, healthy

    path = project_path(db_path)
    findings = check_project(path)
    if as_json:
        print(json.dumps({"path": str(path), "findings": [asdict(f) for f in findings]}, indent=2))
    else:
        console.print(f"Project {path}", highlight=False, markup=False)
        for finding in findings:
            style = _STYLE[finding.level]
            console.print(f"  [{style}]{finding.level:<8}[/] {finding.check}: ", end="")
            console.print(finding.detail, highlight=False, markup=False, soft_wrap=True)
    if not healthy(findings):
        sys.exit(1)
