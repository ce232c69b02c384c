"""Reading and checking a whole file before anything is written: :func:`plan_import`."""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Sequence
from pathlib import Path

from coder.errors import ImportError_
from coder.importer.columns import (
    QUESTION_COLUMNS,
    TEXT_COLUMNS,
    cell_text,
    column_index,
    column_letter,
    find_column,
)
from coder.importer.headers import match_question
from coder.importer.long import plan_long
from coder.importer.model import ImportLimits, ImportPlan, Shape, Table
from coder.importer.text_files import read_csv, read_jsonl
from coder.importer.wide import plan_wide
from coder.importer.xlsx_reader import read_xlsx
from schemas import Codebook


def plan_import(
    path: str | Path,
    *,
    codebook: Codebook | None = None,
    shape: Shape | None = None,
    text_column: str | None = None,
    question_column: str | None = None,
    id_column: str | None = None,
    respondent_column: str | None = None,
    question_columns: str | Sequence[str] | None = None,
    column_map: Sequence[tuple[str, str]] | None = None,
    attribute_columns: Sequence[str] | None = None,
    question: str | None = None,
    sheet: str | None = None,
    encoding: str | None = None,
    allow_unknown_questions: bool = False,
    limits: ImportLimits | None = None,
) -> ImportPlan:
    """Read and check a file; return the responses it holds. Writes nothing.

    ``limits`` caps cell length and an XLSX's unzipped size (:class:`ImportLimits`).

    ``column_map`` pairs a column (letter or exact header) with a question id, as
    ``--map "D=H1"`` does; it implies the wide shape. ``question_columns`` may be the raw
    comma-separated ``--question-columns`` value: it is split knowing the headers.
    """
    path = Path(path)
    limits = limits or ImportLimits()
    if not path.exists():
        raise ImportError_(f"{path}: file not found")
    if not path.is_file():
        raise ImportError_(f"{path}: not a file")
    table = read_table(path, sheet, encoding, limits)
    _check_header(path, table)
    text_index = find_column(table.header, text_column, TEXT_COLUMNS, path, "response text")
    question_index = find_column(table.header, question_column, QUESTION_COLUMNS, path, "question")
    if shape is None:
        shape = _detect_shape(table, codebook, text_index, question_index, bool(question_columns or column_map))
    plan = ImportPlan(source=path, shape=shape, encoding=table.encoding, mapping={})
    plan.warnings += table.warnings + _headerless_columns(path, table)
    plan.file_hash = hashlib.sha256(path.read_bytes()).hexdigest()
    if shape == "long":
        if column_map:
            raise ImportError_(f"{path}: --map names question columns of a wide file; this import is long-shaped")
        plan_long(plan, table, codebook, text_index, question_index, id_column,
                   respondent_column, attribute_columns, question, allow_unknown_questions)
    else:
        plan_wide(plan, table, codebook, id_column, respondent_column, question_columns,
                   column_map or (), attribute_columns, allow_unknown_questions)
    plan.columns.sort(key=lambda c: column_index(c.letter) or 0)
    # vars() rather than dataclasses.asdict: the fields are plain values, and asdict's deep
    # copy took most of a second on a 10,000-column file.
    plan.mapping["columns"] = [dict(vars(c)) for c in plan.columns]

    _check_unique_ids(path, plan)
    return plan


def read_table(path: Path, sheet: str | None, encoding: str | None, limits: ImportLimits) -> Table:
    """The table a file holds, read by its kind (JSONL, XLSX, CSV/TSV), every cell within limits."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        records = read_jsonl(path, encoding)
        keys: list[str] = []
        for _, record in records:
            for key in record:
                if key not in keys:
                    keys.append(key)
        rows = [(number, [record.get(key) for key in keys]) for number, record in records]
        table = Table(header=keys, rows=rows, encoding="utf-8")
    elif suffix in (".xlsx", ".xlsm"):
        table = read_xlsx(path, sheet, limits)
    elif suffix in (".csv", ".tsv", ".txt"):
        table = read_csv(path, encoding, "\t" if suffix == ".tsv" else None, limits)
    else:
        raise ImportError_(f"{path}: unsupported file type {suffix!r} (use .csv, .xlsx or .jsonl)")
    _check_cell_sizes(path, table, limits)
    return table


def _check_header(path: Path, table: Table) -> None:
    """Refuse a file without data rows, or with two columns of one name."""
    if not table.rows:
        raise ImportError_(f"{path}: the file has a header but no data rows")
    # Counted once (header.count per header is quadratic: 73 s on a 40k-column file).
    counts = collections.Counter(table.header)
    duplicates = {h for h, n in counts.items() if h and n > 1}
    if duplicates:
        raise ImportError_(f"{path}: row 1: duplicate column name(s): {', '.join(sorted(duplicates))}")


def _detect_shape(
    table: Table, codebook: Codebook | None, text_index: int | None, question_index: int | None,
    columns_named: bool,
) -> Shape:
    """long when the file has a text or question column and names at most one codebook
    question in its headers (nor did ``--question-columns``/``--map`` name any), else wide."""
    # Two or more headers naming codebook questions make a Forms export even when
    # another column happens to be called 'Comments' or 'Feedback'.
    named_questions = sum(1 for h in table.header if match_question(h, codebook))
    long_file = (
        (text_index is not None or question_index is not None)
        and not columns_named and named_questions < 2
    )
    return "long" if long_file else "wide"


def _check_unique_ids(path: Path, plan: ImportPlan) -> None:
    """Refuse two responses with one id, naming both rows."""
    seen: dict[str, int] = {}
    for response in plan.responses:
        if response.id in seen:
            raise ImportError_(
                f"{path}: row {response.source_row}: duplicate id {response.id!r} "
                f"(first at row {seen[response.id]})"
            )
        seen[response.id] = response.source_row or 0


def _check_cell_sizes(path: Path, table: Table, limits: ImportLimits) -> None:
    """Refuse a cell longer than ``limits.max_cell_chars``, naming its row and column."""
    cap = limits.max_cell_chars
    for number, row in [(1, table.header), *table.rows]:
        for index, cell in enumerate(row):
            if isinstance(cell, str) and len(cell) > cap:
                raise ImportError_(
                    f"{path}: row {number}, column {column_letter(index)}: the cell holds "
                    f"{len(cell):,} characters, more than the limit of {cap:,}; if it is "
                    "genuine, raise the limit with --max-cell-chars"
                )


def _headerless_columns(path: Path, table: Table) -> list[str]:
    """A warning per column that holds data under an empty header (it is not imported)."""
    warnings = []
    for index, name in enumerate(table.header):
        if name:
            continue
        rows = [number for number, row in table.rows if cell_text(row[index]).strip()]
        if rows:
            warnings.append(
                f"{path}: row 1, column {column_letter(index)}: no header, so the column's "
                f"{len(rows)} non-empty cell(s) (first at row {rows[0]}) are not imported; give "
                "it a header to keep it"
            )
    return warnings
