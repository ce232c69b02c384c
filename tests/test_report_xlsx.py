"""The XLSX report workbook: golden content of every sheet."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from coder.report import build_report
from coder.report.rows import export_rows
from coder.report.xlsx import sheet_title, write_report_xlsx
from coder.store import Store
from tests.report_project import GOLDEN, project  # noqa: F401  (fixture)


def workbook_content(path: Path) -> dict[str, list[list[Any]]]:
    """Every sheet's non-empty rows, trailing empty cells dropped."""
    workbook = load_workbook(path)
    content = {}
    for sheet in workbook.worksheets:
        rows = []
        for row in sheet.iter_rows(values_only=True):
            values = list(row)
            while values and values[-1] in (None, ""):
                values.pop()
            if values:
                rows.append(values)
        content[sheet.title] = rows
    return content


def test_xlsx_report_matches_golden(project: Store, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "report.xlsx"
    write_report_xlsx(build_report(project), export_rows(project), path)
    content = json.dumps(workbook_content(path), indent=1, ensure_ascii=False, default=str) + "\n"
    golden = GOLDEN / "report_xlsx.json"
    if os.environ.get("CODER_UPDATE_GOLDEN"):
        golden.write_text(content, encoding="utf-8")
    assert content == golden.read_text(encoding="utf-8")


def test_one_sheet_per_question_plus_summary_and_responses(project: Store, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "report.xlsx"
    write_report_xlsx(build_report(project), export_rows(project), path)
    assert load_workbook(path).sheetnames == [
        "Summary",
        "H1 Pathways",
        "H2 Policy levers",
        "Coded responses",
    ]


def test_sheet_titles_are_valid_and_unique() -> None:
    taken: set[str] = set()
    first = sheet_title("Q1: what/why? [draft] and a very long name indeed", taken)
    assert len(first) <= 31 and not set("[]:*?/\\") & set(first)
    second = sheet_title("Q1: what/why? [draft] and a very long name indeed", taken)
    assert second != first and len(second) <= 31
