"""`coder export`: one row per response as CSV, JSONL and XLSX."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from coder.cli import cli
from coder.errors import CoderError
from coder.export import export
from coder.report.rows import COLUMNS
from coder.store import Store
from tests.report_project import project  # noqa: F401  (fixture)


def test_jsonl_rows_hold_final_labels_beside_the_proposal(project: Store, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "coded.jsonl"
    assert export(project, path) == 11
    rows = {row["response_id"]: row for row in map(json.loads, path.read_text().splitlines())}
    r03 = rows["r03"]
    assert r03["label_source"] == "reviewed" and r03["reviewer"] == "alice"
    assert r03["themes"] == ["funding", "system_working"]
    assert r03["proposal_themes"] == ["funding"] and r03["confidence"] == 0.6
    assert r03["decided_at"].startswith("2024-01-01T")
    assert rows["r04"]["notes"] == ["bob: blank answer"] and rows["r04"]["relevant"] is False
    assert rows["r05"]["label_source"] == "model" and rows["r05"]["reviewer"] is None
    assert rows["r11"]["label_source"] == "uncoded" and rows["r11"]["proposal_model"] is None
    assert rows["r01"]["attr.role"] == "Representative from a health innovation network"


def test_csv_has_every_column_and_joined_lists(project: Store, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "coded.csv"
    export(project, path)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 11
    assert set(COLUMNS) <= set(rows[0]) and {"attr.role", "attr.organisation"} <= set(rows[0])
    by_id = {row["response_id"]: row for row in rows}
    assert by_id["r02"]["themes"] == "primary_secondary; funding"
    assert by_id["r08"]["text"] == "National policy is too prescriptive | local teams need room."


def test_xlsx_export_and_cli(project: Store, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "coded.xlsx"
    result = CliRunner().invoke(cli, ["export", "--db", str(project.path), "--out", str(path)])
    assert result.exit_code == 0, result.output
    sheet = load_workbook(path)["Coded responses"]
    assert sheet.max_row == 12
    assert sheet.cell(row=1, column=1).value == "response_id"


def test_unknown_format_is_a_user_error(project: Store, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(CoderError, match="unknown export format"):
        export(project, tmp_path / "coded.pdf")
    result = CliRunner().invoke(
        cli, ["export", "--db", str(project.path), "--out", str(tmp_path / "x.pdf")]
    )
    assert result.exit_code == 1 and "unknown export format" in result.output
