"""Command output files: written atomically, never over a project; "Wrote" goes to stderr."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from coder.cli import cli


def test_codebook_example_refuses_to_overwrite_an_sqlite_file(tmp_path: Path) -> None:
    target = tmp_path / "project.db"
    sqlite3.connect(target).execute("create table t (x)").connection.close()
    before = target.read_bytes()
    result = CliRunner().invoke(cli, ["codebook", "example", "--out", str(target)])
    assert result.exit_code == 1
    assert "refusing to overwrite an SQLite database" in result.output
    assert "Traceback" not in result.output
    assert target.read_bytes() == before


def test_codebook_schema_writes_the_file_and_says_so_on_stderr(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    result = CliRunner().invoke(cli, ["codebook", "schema", "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8").startswith("{")
    assert result.stdout == ""
    assert f"Wrote {target}" in result.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_json_means_json_on_stdout_in_the_eval_commands(tmp_path: Path) -> None:
    """`--json` prints the result alone on stdout (tables to stderr), as in `coder status`;
    `--json-file` writes the same JSON to a file."""
    import json

    source = tmp_path / "codes.csv"
    source.write_text(
        "coder,item,label\n" + "".join(f"{c},i{i},{'a' if (i + (c == 'b')) % 3 else 'b'}\n"
                                       for c in ("a", "b") for i in range(12)),
        encoding="utf-8",
    )
    out = tmp_path / "agree.json"
    result = CliRunner().invoke(
        cli, ["agree", str(source), "--json", "--json-file", str(out), "--resamples", "0"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == json.loads(out.read_text(encoding="utf-8"))
    assert "pairs" in printed
    assert "Cohen" in result.stderr or "cohen" in result.stderr.lower()  # the table, on stderr


def test_the_old_json_file_form_gets_a_hint(tmp_path: Path) -> None:
    gold = tmp_path / "gold"
    gold.mkdir()
    result = CliRunner().invoke(cli, ["eval", str(gold), "--json", "out.json"])
    assert result.exit_code == 2
    assert "--json-file out.json" in result.output
    assert "No such command" not in result.output
