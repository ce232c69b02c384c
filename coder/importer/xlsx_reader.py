"""Reading the first (or a named) sheet of an XLSX workbook, refusing zip bombs, XML bombs and
formulas without a saved result."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from coder.errors import ImportError_
from coder.importer.columns import column_letter, shorten
from coder.importer.model import ImportLimits, Table


def read_xlsx(path: Path, sheet: str | None = None, limits: ImportLimits | None = None) -> Table:
    """Read the first (or named) sheet of an XLSX workbook into a :class:`Table`.

    The archive is checked first (:func:`_inspect_xlsx`: unzipped size, longest text run),
    so a zip bomb is refused before anything is inflated into memory. openpyxl parses the
    XML with defusedxml (a dependency), so entity bombs and external entities (XXE) raise
    instead of expanding; like every other malformed part, they become an
    :class:`ImportError_` naming the file.
    """
    from openpyxl import load_workbook

    limits = limits or ImportLimits()
    formulas = _inspect_xlsx(path, limits)
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # noqa: BLE001 - openpyxl raises anything on a damaged file
        raise ImportError_(f"{path}: not a readable XLSX workbook ({_xlsx_problem(error)})") from None
    try:
        if sheet is not None:
            if sheet not in workbook.sheetnames:
                raise ImportError_(
                    f"{path}: no sheet named {sheet!r} (sheets: {', '.join(workbook.sheetnames)})"
                )
            worksheet = workbook[sheet]
        elif not workbook.worksheets:
            raise ImportError_(f"{path}: the workbook has no worksheet")
        else:
            worksheet = workbook.worksheets[0]
        header_row, raw_rows = _sheet_rows(path, worksheet)
        if header_row is None or not any(cell is not None for cell in header_row):
            raise ImportError_(f"{path}: the sheet {worksheet.title!r} is empty")
        header = [_xlsx_text(cell).strip() if cell is not None else "" for cell in header_row]
        width = max((i + 1 for i, name in enumerate(header) if name), default=0)
        for _, cells in raw_rows:
            filled = [i for i, cell in enumerate(cells) if _xlsx_text(cell).strip()]
            # A column with data but no header is kept (and reported), not cut off.
            width = max(width, filled[-1] + 1)
        header = (header + [""] * width)[:width]
        rows = [
            (number, [_xlsx_value(cell) for cell in (cells + [""] * width)[:width]])
            for number, cells in raw_rows
        ]
        sheet_path = getattr(worksheet, "_worksheet_path", None)
        warnings: list[str] = []
        if sheet_path is not None and formulas.get(sheet_path.lstrip("/")):
            warnings = _uncached_formulas(path, worksheet.title, header, rows)
    finally:
        workbook.close()
    return Table(header=header, rows=rows, encoding="xlsx", warnings=warnings)


def _sheet_rows(path: Path, worksheet: Any) -> tuple[tuple[Any, ...] | None, list[tuple[int, list[Any]]]]:
    """The header row and the non-empty rows (with their numbers) of a read-only sheet."""
    rows: list[tuple[int, list[Any]]] = []
    header: tuple[Any, ...] | None = None
    try:
        for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
            if number == 1:
                header = values
                continue
            if any(value is not None and _xlsx_text(value).strip() for value in values):
                rows.append((number, ["" if value is None else value for value in values]))
    except Exception as error:  # noqa: BLE001 - openpyxl raises anything on a damaged sheet
        raise ImportError_(
            f"{path}: sheet {worksheet.title!r} of the XLSX workbook is not readable "
            f"({_xlsx_problem(error)}); is the file damaged? Open and save it in Excel, or export "
            "it as CSV"
        ) from None
    return header, rows


def _xlsx_problem(error: BaseException) -> str:
    """What went wrong inside an XLSX, in words (the exception type when it says nothing)."""
    name = type(error).__name__
    if name in ("EntitiesForbidden", "ExternalReferenceForbidden", "DTDForbidden", "NotSupportedError"):
        return ("its XML declares entities or external references (an XML bomb or XXE attack?); "
                "Excel never writes these, so the file was refused")
    if name == "ParseError":
        return f"malformed XML: {error}"
    if isinstance(error, RecursionError):
        return "XML nested too deeply"
    text = str(error).strip()
    return f"{name}: {shorten(text, 200)}" if text else name


def _inspect_xlsx(path: Path, limits: ImportLimits) -> dict[str, bool]:
    """Check an XLSX archive before openpyxl reads it; returns part name -> holds formulas.

    Refuses an archive whose parts unzip to more than ``limits.max_unzipped_mb`` (the
    declared sizes are what Python's zip reader will inflate at most: more data fails its
    CRC check) and a part with a text run longer than a cell may be, so a bomb is stopped
    after a few megabytes are inflated, not after a gigabyte is parsed. The same pass notes
    which parts hold formulas (``<f>`` elements), for :func:`_uncached_formulas`.
    """
    import zipfile
    import zlib

    limit = limits.max_unzipped_mb * 1024 * 1024
    # UTF-8 takes at most 4 bytes a character, and markup around a text is short.
    longest_run = 4 * limits.max_cell_chars + 4096
    formulas: dict[str, bool] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            parts = archive.infolist()
            total = sum(info.file_size for info in parts)
            if total > limit:
                raise ImportError_(
                    f"{path}: the workbook unzips to {total / 1024 / 1024:,.0f} MB, more than the "
                    f"limit of {limits.max_unzipped_mb:,} MB (is it a zip bomb?); if it is genuine, "
                    "raise the limit with --max-unzipped-mb"
                )
            for info in parts:
                if not info.filename.endswith((".xml", ".rels")):
                    continue
                formulas[info.filename] = _scan_part(path, archive, info, longest_run, limits)
    except ImportError_:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError,
            ValueError) as error:
        raise ImportError_(f"{path}: not a readable XLSX workbook ({_xlsx_problem(error)})") from None
    return formulas


def _scan_part(path: Path, archive: Any, info: Any, longest_run: int, limits: ImportLimits) -> bool:
    """Stream one XML part: refuse an over-long text run; say whether it holds a formula."""
    formula = False
    run = 0
    tail = b""
    with archive.open(info) as part:
        while chunk := part.read(1 << 20):
            pieces = chunk.split(b"<")
            if len(pieces) == 1:
                run += len(chunk)
                longest = run
            else:
                longest = max(run + len(pieces[0]), max(map(len, pieces[1:-1]), default=0))
                run = len(pieces[-1])
                longest = max(longest, run)
            if longest > longest_run:
                raise ImportError_(
                    f"{path}: {info.filename}: a cell holds more than {limits.max_cell_chars:,} "
                    "characters, the limit; if it is genuine, raise the limit with --max-cell-chars"
                )
            if not formula and _FORMULA_TAG.search(tail + chunk):
                formula = True
            tail = chunk[-16:]
    return formula


def _xlsx_text(value: Any) -> str:
    return _xlsx_value(value) if isinstance(value, bool) else str(value)


def _xlsx_value(value: Any) -> Any:
    # Excel shows a boolean cell as TRUE/FALSE; Python would write True/False.
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return value


_FORMULA_TAG = re.compile(rb"<(?:\w+:)?f[ >/]")


def _uncached_formulas(
    path: Path, title: str, header: list[str], rows: list[tuple[int, list[Any]]]
) -> list[str]:
    """Refuse formula cells that have no saved value (they would import as empty text).

    A workbook written by a script (not saved by Excel) holds formulas without their
    results; read with cached values only, such a cell looks empty. Called only for a sheet
    whose XML holds formulas (:func:`_inspect_xlsx`), so ordinary workbooks are read once.
    """
    from openpyxl import load_workbook

    by_number = {number: cells for number, cells in rows}
    try:
        formulas = load_workbook(path, read_only=True, data_only=False)
    except Exception as error:  # noqa: BLE001 - read once already; damage shows as anything
        raise ImportError_(f"{path}: not a readable XLSX workbook ({_xlsx_problem(error)})") from None
    try:
        for number, values in enumerate(formulas[title].iter_rows(values_only=True), start=1):
            for index, value in enumerate(values):
                if not (isinstance(value, str) and value.startswith("=")):
                    continue
                cached = header[index] if number == 1 and index < len(header) else None
                if number > 1:
                    cells = by_number.get(number)
                    cached = cells[index] if cells is not None and index < len(cells) else ""
                if cached in (None, ""):
                    raise ImportError_(
                        f"{path}: row {number}, column {column_letter(index)}: the cell holds the "
                        f"formula {shorten(value, 40)!r} without a saved result, so its text is "
                        "unknown. Open the file in Excel (or LibreOffice), let it calculate, save "
                        "it, and import again"
                    )
    finally:
        formulas.close()
    return []
