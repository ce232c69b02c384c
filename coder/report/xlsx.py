"""The rapid-insight report as an XLSX workbook (openpyxl).

Sheets: 'Summary', one per question/hypothesis, and 'Coded responses' (the export rows,
streamed through :mod:`coder.xlsx_stream`, so a 500,000-response project does not build
500,000 rows of openpyxl cells). Every user text is a string cell, never a formula, with
characters XML cannot hold shown as U+FFFD (:func:`coder.cells.xlsx_text`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from coder.cells import xlsx_text
from coder.report.data import QuestionReport, ReportData, walk_themes
from coder.report.markdown import TEAM_HEADERS, team_rows
from coder.report.rows import columns_for, flat_value
from coder.xlsx_stream import save_streamed

#: The sheet of export rows, in the export and in the report workbook.
ROWS_SHEET = "Coded responses"

_BOLD = Font(bold=True)
_TITLE = Font(bold=True, size=14)
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_INVALID_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")


def sheet_title(text: str, taken: set[str]) -> str:
    """A valid, unique sheet name (Excel: at most 31 characters, no []:*?/\\)."""
    cleaned = re.sub(r"\s+", " ", _INVALID_SHEET_CHARS.sub(" ", xlsx_text(text)))
    base = cleaned.strip().strip("'")[:31].strip() or "Sheet"
    title, counter = base, 2
    while title.lower() in taken:
        suffix = f" ({counter})"
        title = base[: 31 - len(suffix)] + suffix
        counter += 1
    taken.add(title.lower())
    return title


def put(sheet: Worksheet, row: int, column: int, value: Any) -> Cell:
    """Write a cell; text is always text, never a formula.

    openpyxl stores any string that starts with '=' as a formula, so a response such as
    '=HYPERLINK(...)' would run in Excel: such cells are forced back to plain strings.
    Control characters (which openpyxl refuses) become U+FFFD.
    """
    if isinstance(value, str):
        value = xlsx_text(value)
    cell = sheet.cell(row=row, column=column, value=value)
    if isinstance(value, str) and cell.data_type == "f":
        cell.data_type = "s"
    return cell  # type: ignore[return-value]


def _header(sheet: Worksheet, row: int, values: list[str]) -> None:
    for column, value in enumerate(values, start=1):
        cell = put(sheet, row, column, value)
        cell.font = _BOLD
        cell.fill = _HEADER_FILL


def _widths(sheet: Worksheet, widths: list[int]) -> None:
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width


def _summary_sheet(workbook: Workbook, report: ReportData) -> None:
    sheet = workbook.create_sheet("Summary")
    summary = report.summary
    put(sheet, 1, 1, report.title).font = _TITLE
    version = f" (version {report.codebook_version})" if report.codebook_version else ""
    put(sheet, 2, 1, f"Codebook: {report.codebook_name}{version}")
    put(sheet, 3, 1, report.status.line())
    put(sheet, 4, 1, summary.sentence)
    row = 6
    _header(sheet, row, ["Statistic", "Value"])
    stats: list[tuple[str, Any]] = [
        ("Responses received", summary.responses_received),
        ("People (distinct respondents)", summary.respondents),
        ("Responses analysed (relevant)", summary.relevant),
        ("Responses excluded as not relevant", summary.excluded),
        ("Responses not yet coded", summary.uncoded),
        ("Organisations represented", summary.organisations),
        ("Human-reviewed", report.status.reviewed),
        ("Model-only (not yet reviewed)", report.status.model_only),
    ]
    for label, value in stats:
        row += 1
        put(sheet, row, 1, label)
        put(sheet, row, 2, value)
    for heading, pairs in (
        ("Excluded: reason", summary.excluded_reasons),
        ("Tag", [(f"#{tag}", n) for tag, n in summary.by_tag]),
    ):
        if not pairs:
            continue
        row += 2
        _header(sheet, row, [heading, "n"])
        for value, n in pairs:
            row += 1
            put(sheet, row, 1, value)
            put(sheet, row, 2, n)
    for breakdown in summary.breakdowns:
        row += 2
        _header(sheet, row, [breakdown.title.replace("_", " "), "Responses", "People"])
        for item in breakdown.rows:
            row += 1
            put(sheet, row, 1, item.value)
            put(sheet, row, 2, item.responses)
            put(sheet, row, 3, item.people)
    if summary.people_note:
        row += 2
        put(sheet, row, 1, f"People: {summary.people_note}")
    row += 2
    _header(
        sheet,
        row,
        ["Question", "Responses", "People", "Relevant", "Excluded", "Reviewed", "Model-only"],
    )
    for question in report.questions:
        row += 1
        values = [
            question.title,
            question.responses,
            question.people,
            question.relevant,
            question.excluded,
            question.status.reviewed,
            question.status.model_only,
        ]
        for column, value in enumerate(values, start=1):
            put(sheet, row, column, value)
    if len(report.team) >= 2:
        row += 2
        put(sheet, row, 1, "Coding team").font = _TITLE
        row += 1
        _header(sheet, row, TEAM_HEADERS)
        for values in team_rows(report):
            row += 1
            for column, value in enumerate(values, start=1):
                put(sheet, row, column, value)
    _widths(sheet, [42, 12, 12, 12, 12, 12, 12])


def _question_sheet(workbook: Workbook, question: QuestionReport, taken: set[str]) -> None:
    sheet = workbook.create_sheet(sheet_title(question.title, taken))
    put(sheet, 1, 1, question.title).font = _TITLE
    put(sheet, 2, 1, question.text).alignment = Alignment(wrap_text=True, vertical="top")
    put(sheet, 3, 1, f"Responses: {question.counts_line}")
    if question.has_stance:
        put(sheet, 4, 1, f"Does it resonate? {question.resonance}")
    put(sheet, 5, 1, question.status.line())
    row = 5
    if question.has_stance:
        row += 2
        _header(sheet, row, ["Stance", "n", "Share"])
        for stance in question.stance:
            row += 1
            put(sheet, row, 1, stance.label)
            put(sheet, row, 2, stance.n)
            put(sheet, row, 3, round(stance.share, 4)).number_format = "0%"
    row += 2
    _header(sheet, row, ["Theme", "Sub-theme", "n", "Share", "Reviewed", "Theme id", "Definition"])
    for depth, node in walk_themes(question.themes):
        row += 1
        put(sheet, row, 1 if depth == 0 else 2, node.label)
        put(sheet, row, 3, node.n)
        put(sheet, row, 4, round(node.share, 4)).number_format = "0%"
        put(sheet, row, 5, node.reviewed)
        put(sheet, row, 6, node.theme_id)
        put(sheet, row, 7, node.definition)
    if question.quotes:
        row += 2
        _header(
            sheet,
            row,
            ["Quote", "Attribution", "Themes", "Labels", "Flagged by reviewer", "Response id"],
        )
        for quote in question.quotes:
            row += 1
            values = [
                quote.text,
                quote.attribution,
                "; ".join(quote.themes),
                quote.source,
                "yes" if quote.flagged else "no",
                quote.response_id,
            ]
            for column, value in enumerate(values, start=1):
                put(sheet, row, column, value).alignment = Alignment(
                    wrap_text=True, vertical="top"
                )
    _widths(sheet, [50, 40, 8, 8, 10, 24, 60])


def add_rows_sheet(workbook: Workbook, title: str, columns: list[str]) -> Worksheet:
    """The rows sheet with its header only; :func:`coder.xlsx_stream.save_streamed` adds
    the rows (one per export row, lists joined with '; ') when the workbook is saved."""
    sheet = workbook.create_sheet(title)
    _header(sheet, 1, columns)
    sheet.freeze_panes = "B2"
    sheet.auto_filter.ref = sheet.dimensions
    return sheet


def sheet_row_values(rows: Iterable[dict[str, Any]], columns: list[str]) -> Iterator[list[Any]]:
    """Each export row as the cell values of ``columns`` (see :func:`coder.report.rows.flat_value`)."""
    for row in rows:
        yield [flat_value(row.get(key)) for key in columns]


def build_workbook(report: ReportData, columns: list[str]) -> Workbook:
    """The report workbook: Summary, one sheet per question, then the coded responses'
    header (the rows are streamed in when saved)."""
    workbook = Workbook()
    workbook.remove(workbook.active)  # type: ignore[arg-type]
    _summary_sheet(workbook, report)
    taken = {"summary", ROWS_SHEET.lower()}
    for question in report.questions:
        _question_sheet(workbook, question, taken)
    add_rows_sheet(workbook, ROWS_SHEET, columns)
    return workbook


def write_report_xlsx(
    report: ReportData,
    rows: Iterable[dict[str, Any]],
    path: Path,
    columns: list[str] | None = None,
) -> None:
    """Save the report workbook to ``path``, streaming ``rows`` into its last sheet.

    ``columns`` default to those of the rows (which are then all read first).
    """
    if columns is None:
        rows = list(rows)
        columns = columns_for(rows)
    save_streamed(build_workbook(report, columns), ROWS_SHEET, sheet_row_values(rows, columns), path)
