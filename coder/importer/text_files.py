"""Reading CSV and JSON Lines files into rows, with errors that name the file, row and column."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from coder.cells import is_coder_export, restore
from coder.decoding import bom_encoding, decode_bytes, line_and_column, wide_encoding
from coder.errors import ImportError_
from coder.importer.columns import JsonNumber, shorten
from coder.importer.model import ImportLimits, Table
from coder.jsonl import parse_jsonl


def read_csv(
    path: Path, encoding: str | None = None, delimiter: str | None = None,
    limits: ImportLimits | None = None,
) -> Table:
    """Read a CSV file into a :class:`Table`, checking every row's shape."""
    limits = limits or ImportLimits()
    data = read_bytes(path)
    if not data.strip():
        raise ImportError_(f"{path}: the file is empty")
    if b"\x00" in data and bom_encoding(data) in (None, "utf-8-sig") and not wide_encoding(encoding):
        line, column = line_and_column(data, data.index(b"\x00"))
        hint = "is this a binary file?"
        if data[1:200:2].count(0) > 0.8 * len(data[1:200:2]) or data[0:200:2].count(0) > 0.8 * len(data[0:200:2]):
            hint = ("it looks like UTF-16 text without a byte-order mark; pass --encoding utf-16-le "
                    "(or utf-16-be)")
        raise ImportError_(f"{path}: row {line}, column {column}: NUL byte ({hint})")
    text, used = decode_bytes(data, path, encoding, ImportError_)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ImportError_(f"{path}: row {line}: a NUL character in the text (is this a binary file?)")
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:20_000], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    text, skipped_lines, warnings = _skip_comment_lines(text, path, delimiter)
    # One response may be a long essay (the csv module's default cap is 128 KiB), but not
    # without end: the cap bounds the memory one cell can take.
    csv.field_size_limit(limits.max_cell_chars)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except csv.Error as error:
        raise ImportError_(f"{path}: row 1: malformed CSV header: {error}") from None
    except StopIteration:
        raise ImportError_(f"{path}: the file is empty (no header row)") from None
    header = [h.strip() for h in header]
    rows: list[tuple[int, list[Any]]] = []
    try:
        for row in reader:
            line = reader.line_num + skipped_lines
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise ImportError_(
                    f"{path}: row {line}: has {len(row)} fields but the header has {len(header)} "
                    "(an unquoted comma or newline in a cell?)"
                )
            rows.append((line, row))
    except csv.Error as error:
        if "field larger than field limit" in str(error):
            raise ImportError_(
                f"{path}: row {reader.line_num + skipped_lines}: a cell is longer than "
                f"{limits.max_cell_chars:,} characters, the limit; if it is genuine, raise the "
                "limit with --max-cell-chars"
            ) from None
        raise ImportError_(
            f"{path}: row {reader.line_num + skipped_lines}: malformed CSV: {error}"
        ) from None
    if is_coder_export(header):
        # A coder CSV export: undo the quote it put before formula-like cells (coder/cells.py),
        # so ids and texts come back exactly as they were exported.
        rows = [(line, [restore(cell) for cell in row]) for line, row in rows]
    return Table(header=header, rows=rows, encoding=used, warnings=warnings)


def _skip_comment_lines(text: str, path: Path, delimiter: str) -> tuple[str, int, list[str]]:
    """Drop leading '#' comment lines (e.g. a note on where the data came from).

    A '#' line with as many fields (two or more) as the line after it is a header whose
    first column is called '#...', not a comment: it is kept, with a warning. Every
    skipped line is reported, so a header is never dropped silently.
    """
    skipped = 0
    warnings: list[str] = []
    while text.startswith("#"):
        newline = text.find("\n")
        line = text if newline == -1 else text[:newline]
        rest = "" if newline == -1 else text[newline + 1 :]
        following = rest.split("\n", 1)[0]
        fields = _field_count(line, delimiter)
        if fields >= 2 and fields == _field_count(following, delimiter):
            warnings.append(
                f"{path}: row {skipped + 1}, column A: the line starts with '#' but has as many "
                f"fields ({fields}) as the next line, so it is read as the header, not a comment"
            )
            break
        skipped += 1
        warnings.append(
            f"{path}: row {skipped}, column A: a line starting with '#' was skipped as a comment "
            f"({shorten(line, 40)!r})"
        )
        text = rest
    return text, skipped, warnings


def _field_count(line: str, delimiter: str) -> int:
    try:
        return len(next(csv.reader([line], delimiter=delimiter), []))
    except csv.Error:
        return 0


def read_jsonl(path: Path, encoding: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    """Read a JSON Lines file: one object per line."""
    data = read_bytes(path)
    if not data.strip():
        raise ImportError_(f"{path}: the file is empty")
    text, _ = decode_bytes(data, path, encoding, ImportError_)
    # coder/jsonl.py splits at newlines only (not at U+2028 or form feed, which strings may
    # hold) and refuses hostile content (deep nesting, huge integers, lone surrogates).
    return list(parse_jsonl(text, path, ImportError_, row_word="row",
                            parse_float=JsonNumber, parse_constant=JsonNumber))


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ImportError_(f"{path}: cannot read the file: {error.strerror or error}") from None
