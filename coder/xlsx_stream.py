"""One large sheet streamed into an XLSX workbook, in memory that does not grow with it.

openpyxl builds the workbook — styles, the header row, column widths, frozen panes, the
other (small) sheets — and is the reference for the format. Its cell writer, though, costs
about 8 µs a cell on this project's machines (write-only mode included), so 500,000
responses × 28 columns took over a minute and a half. :func:`save_streamed` therefore
saves openpyxl's workbook with the big sheet holding only its header, then copies that
package entry by entry into the output and, in the big sheet's XML, writes the data rows
itself as they come: inline-string, number and boolean cells, nothing else. No cell is ever
a formula (there is no ``<f>`` element to write), every text goes through
:func:`coder.cells.xlsx_text` (characters XML forbids become U+FFFD, over-long cells are
cut with a note), and the zip entry is written with ZIP64 so it can pass 4 GB.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from coder.cells import xlsx_text

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_RELS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PACKAGE_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
#: Rows gathered before a write to the zip stream (bounded memory, few system calls).
_ROWS_PER_WRITE = 500
#: Integers beyond this lose digits as Excel numbers (doubles): written as text instead.
_MAX_EXACT_INT = 2**53


#: Anything that needs more than copying: markup, CR, characters XML forbids, surrogates.
_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_PLAIN_LIMIT = 32_767


def _escape(text: str) -> str:
    # Most answers are plain text: one scan, no copies (a third of the export's time went
    # into escaping before this fast path).
    if len(text) <= _PLAIN_LIMIT and _SPECIAL.search(text) is None:
        return text
    # \r is kept as a character reference: a literal one would be read back as \n.
    return (
        xlsx_text(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", "&#13;")
    )


def cell_xml(reference: str, value: Any) -> str:
    """One ``<c>`` element: text as an inline string, numbers and booleans typed; '' if empty."""
    if value.__class__ is str:
        if not value:
            return ""
        return (
            f'<c r="{reference}" t="inlineStr"><is><t xml:space="preserve">'
            f"{_escape(value)}</t></is></c>"
        )
    if value is None:
        return ""
    if isinstance(value, bool):
        return f'<c r="{reference}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int) and abs(value) < _MAX_EXACT_INT:
        return f'<c r="{reference}"><v>{value}</v></c>'
    if isinstance(value, float) and math.isfinite(value):
        return f'<c r="{reference}"><v>{value!r}</v></c>'
    if value == "":
        return ""
    return (
        f'<c r="{reference}" t="inlineStr"><is><t xml:space="preserve">'
        f"{_escape(str(value))}</t></is></c>"
    )


def _sheet_path(package: zipfile.ZipFile, title: str) -> str:
    """The zip entry of the sheet called ``title`` (workbook.xml + its relationships)."""
    workbook = ElementTree.fromstring(package.read("xl/workbook.xml"))
    relations = ElementTree.fromstring(package.read("xl/_rels/workbook.xml.rels"))
    targets = {rel.get("Id"): rel.get("Target", "") for rel in relations.iter(f"{_PACKAGE_RELS}Relationship")}
    for sheet in workbook.iter(f"{_MAIN}sheet"):
        if sheet.get("name") == title:
            target = targets[sheet.get(f"{_RELS}id")]
            return target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    raise KeyError(title)


def save_streamed(
    workbook: Workbook,
    title: str,
    rows: Iterable[Sequence[Any]],
    path: Path,
    *,
    first_row: int = 2,
) -> int:
    """Save ``workbook`` to ``path`` with ``rows`` appended to its sheet ``title``.

    The sheet must already hold its header (rows above ``first_row``) and nothing below;
    its auto-filter, if set, is widened to cover the rows written. Returns the row count.
    """
    template = io.BytesIO()
    workbook.save(template)
    written = 0
    with zipfile.ZipFile(template) as source:
        target = _sheet_path(source, title)
        sheet_xml = source.read(target).decode("utf-8")
        # The size hint would be wrong once rows are added; it is optional, so it goes.
        sheet_xml = re.sub(r"<dimension [^>]*/>", "", sheet_xml, count=1)
        if "<sheetData/>" in sheet_xml:
            sheet_xml = sheet_xml.replace("<sheetData/>", "<sheetData></sheetData>", 1)
        head, tail = sheet_xml.split("</sheetData>", 1)
        # compresslevel 1: the rows sheet is most of the file, and level 6 tripled the time
        # spent compressing for a file about 15% smaller.
        with zipfile.ZipFile(
            path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1
        ) as output:
            for item in source.infolist():
                if item.filename != target:
                    output.writestr(item, source.read(item.filename))
                    continue
                entry = zipfile.ZipInfo(item.filename, date_time=item.date_time)
                entry.compress_type = zipfile.ZIP_DEFLATED
                with output.open(entry, "w", force_zip64=True) as stream:
                    stream.write(head.encode("utf-8"))
                    written, last_column = _write_rows(stream, rows, first_row)
                    stream.write(b"</sheetData>")
                    if last_column:
                        last = f"{get_column_letter(last_column)}{first_row - 1 + written}"
                        tail = re.sub(
                            r'(<autoFilter ref="[A-Z]+\d+):[A-Z]+\d+"', rf'\1:{last}"', tail, count=1
                        )
                    stream.write(tail.encode("utf-8"))
    return written


def _write_rows(
    stream: Any, rows: Iterable[Sequence[Any]], first_row: int
) -> tuple[int, int]:
    letters: list[str] = []
    chunk: list[str] = []
    written = widest = 0
    for number, row in enumerate(rows, start=first_row):
        while len(letters) < len(row):
            letters.append(get_column_letter(len(letters) + 1))
        widest = max(widest, len(row))
        cells = "".join(
            cell_xml(f"{letters[index]}{number}", value) for index, value in enumerate(row)
        )
        chunk.append(f'<row r="{number}">{cells}</row>')
        written += 1
        if len(chunk) >= _ROWS_PER_WRITE:
            stream.write("".join(chunk).encode("utf-8"))
            chunk = []
    if chunk:
        stream.write("".join(chunk).encode("utf-8"))
    return written, widest
