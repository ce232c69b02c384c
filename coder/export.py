"""Export coded responses: one row per response, as CSV, JSONL or XLSX.

Each row holds the labels in force (reviewed, else the model's), the model's own proposal
beside them, who decided and when, the model's confidence and reviewers' notes, so an analyst
can audit or re-analyse the coding in any tool.

Exports are safe to open: CSV text cells that a spreadsheet would run as a formula get a
leading ``'`` (:mod:`coder.cells`; ``coder import`` removes it again from a coder export),
XLSX cells are typed as text (characters XML cannot hold shown as U+FFFD), and every file
is written atomically and never over a project or any SQLite file (:mod:`coder.atomic`).

Rows are streamed: the store is read a batch of responses at a time
(:func:`coder.report.model.iter_coded`) and each format writes rows as they come (the XLSX
sheet through :mod:`coder.xlsx_stream`), so memory grows with a batch, not the project.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from coder.atomic import check_output_path, write_atomically
from coder.cells import neutralise
from coder.errors import CoderError
from coder.report.rows import columns_for, export_columns, flat_value, iter_export_rows
from coder.store import Store

ExportFormat = Literal["csv", "jsonl", "xlsx"]
FORMATS: tuple[str, ...] = ("csv", "jsonl", "xlsx")

def csv_value(value: Any) -> Any:
    """A CSV cell: :func:`flat_value`, with formula-like text neutralised (see coder.cells)."""
    flat = flat_value(value)
    return neutralise(flat) if isinstance(flat, str) else flat


def _listed(rows: Iterable[dict[str, Any]], columns: list[str] | None) -> tuple[Iterable[dict[str, Any]], list[str]]:
    if columns is not None:
        return rows, columns
    listed = list(rows)
    return listed, columns_for(listed)


def write_csv(
    rows: Iterable[dict[str, Any]], path: Path, columns: list[str] | None = None
) -> int:
    """Rows as CSV (UTF-8 with BOM); text a spreadsheet would run as a formula gets a '.

    ``columns`` default to those of the rows (which are then all read first). Returns the
    number of rows written.
    """
    rows, columns = _listed(rows, columns)
    count = 0
    # utf-8-sig so Excel opens non-ASCII text correctly.
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: csv_value(row.get(column)) for column in columns})
            count += 1
    return count


def write_jsonl(
    rows: Iterable[dict[str, Any]], path: Path, columns: list[str] | None = None
) -> int:
    """Rows as JSON Lines, values as stored (no spreadsheet escaping). Returns the count."""
    del columns  # every row carries its own keys
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_xlsx(
    rows: Iterable[dict[str, Any]], path: Path, columns: list[str] | None = None
) -> int:
    """Rows as one XLSX sheet, streamed; every text is a string cell, never a formula.

    Returns the number of rows written.
    """
    from openpyxl import Workbook

    from coder.report.xlsx import ROWS_SHEET, add_rows_sheet, sheet_row_values
    from coder.xlsx_stream import save_streamed

    rows, columns = _listed(rows, columns)
    workbook = Workbook()
    workbook.remove(workbook.active)  # type: ignore[arg-type]
    add_rows_sheet(workbook, ROWS_SHEET, columns)
    return save_streamed(workbook, ROWS_SHEET, sheet_row_values(rows, columns), path)


def export(store: Store, path: Path, fmt: str | None = None) -> int:
    """Write every response to ``path`` (format from ``fmt`` or the suffix). Returns the count.

    Refuses a ``path`` that is the project, or any SQLite file; writes atomically, reading
    the store a batch at a time.
    """
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise CoderError(f"{path}: unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    check_output_path(path, protect=[store.path])
    columns = export_columns(store)
    writer = {"csv": write_csv, "jsonl": write_jsonl, "xlsx": write_xlsx}[fmt]
    counted: list[int] = []

    def write(temporary: Path) -> None:
        counted.append(writer(iter_export_rows(store), temporary, columns))

    write_atomically(path, write)
    return counted[0]


def export_refi_qda(store: Store, path: Path, fmt: str) -> str:
    """Write the project as a REFI-QDA project (``qdpx``) or codebook (``qdc``), atomically.

    The project is streamed like the rows (see :func:`coder.refi_qda.write_qdpx`). Returns a
    one-line summary of what was written.
    """
    from coder import refi_qda

    check_output_path(path, protect=[store.path])
    try:
        _, codebook = store.codebook()
    except LookupError as error:
        raise CoderError(str(error)) from error
    if fmt == "qdc":
        write_atomically(path, lambda temporary: refi_qda.write_qdc(codebook, temporary))
        return f"{len(codebook.themes)} codes"
    counted: list[int] = []

    def write(temporary: Path) -> None:
        counted.append(refi_qda.write_qdpx(store, temporary, codebook))

    write_atomically(path, write)
    return f"{counted[0]} sources"
