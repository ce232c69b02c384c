"""The command line's shape: global options before the command, and a light `coder --help`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from coder.cli import cli
from tests.conftest import REPO

HEAVY = ("coder.store", "sqlite_utils", "pydantic", "textual", "numpy", "openai", "schemas")


def test_db_given_before_the_command_is_used_by_it(tmp_path: Path) -> None:
    db = tmp_path / "before.db"
    added = CliRunner().invoke(cli, ["--db", str(db), "codebook", "add", "--example"])
    assert added.exit_code == 0, added.output
    status = CliRunner().invoke(cli, ["--db", str(db), "status", "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["codebook_version"] == 1
    # The command's own --db wins over the one before it.
    other = tmp_path / "other.db"
    CliRunner().invoke(cli, ["--db", str(db), "codebook", "add", "--example", "--db", str(other)])
    assert other.exists()


def test_help_lists_commands_without_importing_them() -> None:
    code = (
        "import sys\n"
        "from coder.cli import cli\n"
        "try:\n"
        "    cli(['--help'], prog_name='coder')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('LOADED', [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Commands:" in done.stdout and "precode" in done.stdout
    assert "LOADED []" in done.stdout


def test_eval_errors_name_the_gold_argument_not_a_hidden_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["eval", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "'GOLD'" in result.output and "--gold" not in result.output


def test_report_out_that_looks_like_a_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "--out", str(out), "--db", str(tmp_path / "p.db")])
    assert result.exit_code == 2
    assert "looks like a file name" in result.output
    assert not out.exists()


def test_a_gold_folder_may_hold_a_yaml_codebook() -> None:
    # tests/codebooks/* (and ../shared/gold/rapid_insight_dev) hold codebook.yaml + items.jsonl.
    from eval.gold import load_gold

    codebook, items = load_gold(REPO / "tests" / "codebooks" / "ward_feedback")
    assert codebook.themes and items
