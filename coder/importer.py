"""Import responses from CSV, XLSX and JSONL files.

Two shapes are understood:

- **long**: one row per response, with a text column and (optionally) a question column;
- **wide**: a Microsoft Forms style export, one row per respondent and one column per
  question; every non-empty answer cell becomes one response. Headers are matched to the
  codebook's questions exactly, then tolerantly (normalised text, word similarity), and
  every tolerant match is reported; ``--map "D=H1"`` names a column's question outright.
  Forms' role and organisation columns become the attributes ``role``, ``organisation``
  and ``organisation_type``; its ID column is the respondent; times, email and name are
  dropped.

The whole file is read and checked before anything is written, and the write is one
transaction, so a bad file leaves the project exactly as it was. Ids are stable: the
file's id column when there is one, else a hash of file name + row + question, so
re-importing a file adds nothing twice; re-importing it under *other* question ids is
refused (:func:`reimport_conflicts`), since that would hold every answer twice.
"""

from __future__ import annotations

import collections
import csv
import difflib
import functools
import hashlib
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from coder.cells import is_coder_export, restore
from coder.errors import ImportError_
from coder.jsonl import bom_encoding, line_and_column, parse_jsonl
from schemas import Codebook, Response

Shape = Literal["long", "wide"]

TEXT_COLUMNS = ("text", "response", "answer", "comment", "comments", "free_text", "feedback")
QUESTION_COLUMNS = ("question", "question_id", "hypothesis", "hypothesis_id", "prompt")
ID_COLUMNS = ("id", "response_id", "comment_id", "uid")
RESPONDENT_COLUMNS = ("respondent", "respondent_id", "participant", "participant_id")
# Microsoft Forms metadata columns: never treated as questions. Email and Name are
# personal data, so they are dropped unless asked for by --attribute.
FORMS_METADATA = ("id", "start time", "completion time", "last modified time")
FORMS_PERSONAL = ("email", "name")

HASHTAG = re.compile(r"(?<![\w&])#([A-Za-z][\w-]*\w|[A-Za-z])")
# Well-formed multi-byte UTF-8 sequences: their presence means the file *is* UTF-8
# (with some bad bytes), not a single-byte Windows encoding.
UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def extract_tags(text: str) -> list[str]:
    """Hashtags in ``text`` (without '#', first occurrence order, no duplicates)."""
    seen: dict[str, None] = {}
    for match in HASHTAG.finditer(text or ""):
        seen.setdefault(match.group(1), None)
    return list(seen)


@dataclass
class ImportPlan:
    """What an import will do: the parsed responses and how columns were mapped."""

    source: Path
    shape: Shape
    encoding: str
    mapping: dict[str, Any]
    responses: list[Response] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    file_hash: str = ""
    columns: list[ColumnPlan] = field(default_factory=list)

    def tolerant_matches(self) -> list[ColumnPlan]:
        """Question columns matched other than exactly (to show the user what was assumed)."""
        return [c for c in self.columns if c.role == "question" and not c.exact]


#: Default caps on what one import may take (see :class:`ImportLimits`).
MAX_CELL_CHARS = 2_000_000
MAX_UNZIPPED_MB = 1024


@dataclass(frozen=True)
class ImportLimits:
    """Caps that keep a hostile or broken file from taking all memory and time.

    ``max_cell_chars``: the longest cell (any format). Excel itself stops at 32,767
    characters; the default of two million keeps a pasted document, refuses a 1 GB cell.
    ``max_unzipped_mb``: what an XLSX may unzip to (its parts' declared sizes, which
    Python's zip reader never exceeds); a 1 MB zip bomb can unzip to gigabytes.
    Both are named in the error, with the option that raises them.
    """

    max_cell_chars: int = MAX_CELL_CHARS
    max_unzipped_mb: int = MAX_UNZIPPED_MB


@dataclass
class Table:
    """A rectangular table read from a file: header and rows with their source row numbers."""

    header: list[str]
    rows: list[tuple[int, list[Any]]]
    encoding: str
    #: things read but worth telling the user (each names the file, row and column)
    warnings: list[str] = field(default_factory=list)


def _norm(name: Any) -> str:
    # str.split() splits at the same (Unicode) whitespace as re's \s, several times faster:
    # this runs several times per column, and files may have 40,000 columns.
    return " ".join(str(name or "").split()).lower()


def _position(data: bytes, offset: int) -> tuple[int, int]:
    return line_and_column(data, offset)


def decode_bytes(data: bytes, path: Path, encoding: str | None = None) -> tuple[str, str]:
    """Decode file bytes: UTF-8 (with or without BOM) or cp1252 (Excel's default).

    A byte-order mark wins over everything: Excel's "Unicode Text" is UTF-16 with a BOM
    (and tabs between cells), whatever ``--encoding`` says about UTF-16's byte order.
    Returns (text, encoding). Bad bytes raise an error naming file, line and column.
    """
    announced = bom_encoding(data)
    if announced is not None and announced != "utf-8-sig" and (encoding is None or _wide_encoding(encoding)):
        try:
            return data.decode(announced), announced
        except UnicodeDecodeError as error:
            line, column = _position(data, error.start)
            raise ImportError_(
                f"{path}: row {line}, column {column}: bytes that are not valid {announced} text "
                f"({error.reason}), although the file starts with a {announced.upper()} byte-order mark"
            ) from None
    if encoding:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as error:
            line, column = _position(data, error.start)
            raise ImportError_(
                f"{path}: row {line}, column {column}: byte 0x{data[error.start]:02x} is not valid {encoding}"
            ) from None
        except LookupError:
            raise ImportError_(f"unknown encoding {encoding!r}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as error:
            line, column = _position(data, error.start + 3)
            raise ImportError_(
                f"{path}: row {line}, column {column}: invalid UTF-8 byte 0x{data[error.start + 3]:02x} "
                "(the file starts with a UTF-8 byte-order mark)"
            ) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as error:
        utf8_error = error
    if UTF8_MULTIBYTE.search(data):
        line, column = _position(data, utf8_error.start)
        raise ImportError_(
            f"{path}: row {line}, column {column}: invalid UTF-8 byte 0x{data[utf8_error.start]:02x} "
            "(the rest of the file is UTF-8; fix the byte or pass --encoding)"
        )
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as error:
        line, column = _position(data, error.start)
        raise ImportError_(
            f"{path}: row {line}, column {column}: byte 0x{data[error.start]:02x} is neither UTF-8 "
            "nor Windows-1252 text; pass --encoding"
        ) from None


def read_csv(
    path: Path, encoding: str | None = None, delimiter: str | None = None,
    limits: ImportLimits | None = None,
) -> Table:
    """Read a CSV file into a :class:`Table`, checking every row's shape."""
    limits = limits or ImportLimits()
    data = _read_bytes(path)
    if not data.strip():
        raise ImportError_(f"{path}: the file is empty")
    if b"\x00" in data and bom_encoding(data) in (None, "utf-8-sig") and not _wide_encoding(encoding):
        line, column = _position(data, data.index(b"\x00"))
        hint = "is this a binary file?"
        if data[1:200:2].count(0) > 0.8 * len(data[1:200:2]) or data[0:200:2].count(0) > 0.8 * len(data[0:200:2]):
            hint = ("it looks like UTF-16 text without a byte-order mark; pass --encoding utf-16-le "
                    "(or utf-16-be)")
        raise ImportError_(f"{path}: row {line}, column {column}: NUL byte ({hint})")
    text, used = decode_bytes(data, path, encoding)
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


def read_jsonl(path: Path, encoding: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    """Read a JSON Lines file: one object per line."""
    data = _read_bytes(path)
    if not data.strip():
        raise ImportError_(f"{path}: the file is empty")
    text, _ = decode_bytes(data, path, encoding)
    # coder/jsonl.py splits at newlines only (not at U+2028 or form feed, which strings may
    # hold) and refuses hostile content (deep nesting, huge integers, lone surrogates).
    return list(parse_jsonl(text, path, ImportError_, row_word="row",
                            parse_float=JsonNumber, parse_constant=JsonNumber))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ImportError_(f"{path}: cannot read the file: {error.strerror or error}") from None


def _wide_encoding(encoding: str | None) -> bool:
    """True for an encoding whose text holds NUL bytes (UTF-16, UTF-32)."""
    name = (encoding or "").lower().replace("_", "-")
    return name.startswith(("utf-16", "utf16", "utf-32", "utf32"))


class JsonNumber(str):
    """A JSON number with a fraction or exponent, or NaN/Infinity, kept as written.

    ``1.50`` would become the float 1.5 and ``NaN`` the text 'nan'; a response, id or
    question is text, so it keeps the spelling of the file. Attributes get the number back
    (:func:`_attribute_values`).
    """

    __slots__ = ()

    def number(self) -> float:
        return float(self)


def _find(header: Sequence[str], wanted: str | None, candidates: Sequence[str], path: Path, what: str) -> int | None:
    normalised = [_norm(h) for h in header]
    if wanted is not None:
        if _norm(wanted) in normalised:
            return normalised.index(_norm(wanted))
        raise ImportError_(
            f"{path}: no column {wanted!r} for the {what} (columns: {', '.join(header)})"
        )
    for candidate in candidates:
        if candidate in normalised:
            return normalised.index(candidate)
    return None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"  # as JSON writes it (XLSX booleans are text by now)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def stable_id(source: Path, row: int, question: str | None) -> str:
    """Id for a response without an id column: hash of file name + row + question."""
    key = f"{source.name}\x1f{row}\x1f{question or ''}"
    return "r_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


# --- columns -------------------------------------------------------------------------


def column_letter(index: int) -> str:
    """Spreadsheet letter of a 0-based column index: 0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def column_index(letters: str) -> int | None:
    """0-based index of a spreadsheet column letter ('A', 'aa'); None if not letters."""
    if not re.fullmatch(r"[A-Za-z]{1,3}", letters):
        return None
    index = 0
    for char in letters.upper():
        index = index * 26 + ord(char) - ord("A") + 1
    return index - 1


@dataclass(frozen=True)
class ColumnPlan:
    """What the import does with one column of the file, and why (shown in the dry run)."""

    letter: str
    header: str
    # question | text | respondent | id | attribute | dropped
    role: str
    # the question id, or the attribute's name; empty for dropped columns
    target: str
    how: str
    similarity: float | None = None
    exact: bool = True


# --- matching headers to questions ------------------------------------------------------

QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
                        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
                        "\u2013": "-", "\u2014": "-", "\u00a0": " "})
NUMBER_PREFIX = re.compile(r"^(?:hypothesis|question|h|q)\s*(\d+)\b")
PUNCTUATION = re.compile(r"[^\w\s]|_")
ENUMERATION = re.compile(r"^(?:(?:hypothesis|question|h|q)\s*)?\d+\s*[.):\-]\s*")
# Word-level similarity a header must reach to be taken as a question whose text it nearly
# repeats. Between the built-in codebook's ten question texts the highest is 0.23, while a
# header that differs by a word or two from its question scores above 0.95, so 0.8 leaves a
# wide margin both ways. A runner-up within MARGIN of the best makes the match ambiguous.
SIMILAR_WORDS = 0.8
SIMILAR_MARGIN = 0.1
# Headers shorter than this (after normalising) are names, not question texts: they are
# matched only exactly (id, short name, number), never by containment or similarity.
LONG_HEADER = 30

MatchHow = Literal[
    "id", "short name", "exact text", "number", "normalised text", "contains question text",
    "part of question text", "similar words",
]
EXACT_HOWS = ("id", "short name", "exact text", "number")


@dataclass(frozen=True)
class HeaderMatch:
    """The outcome of matching one header (or question value) to the codebook's questions.

    ``question_id`` is None when nothing matched or the match was ambiguous; ``note``
    then says why (it names the candidates), so the import can warn instead of guessing.
    """

    question_id: str | None
    how: str = ""
    similarity: float | None = None
    note: str = ""

    @property
    def exact(self) -> bool:
        return self.how in EXACT_HOWS


def normalise_text(text: Any) -> str:
    """Text for tolerant comparison: lower case, straight quotes, no punctuation or
    enumeration prefix ('1.', 'Hypothesis 2:'), single spaces."""
    return _normalise_text(text if type(text) is str else str(text or ""))


@functools.lru_cache(maxsize=1 << 16)
def _normalise_text(text: str) -> str:
    # Memoised: each header is normalised by several checks (question match, role and
    # organisation names, free text), and question values repeat on every row.
    value = ENUMERATION.sub("", _norm(text).translate(QUOTES))
    return " ".join(PUNCTUATION.sub(" ", value).split())


def match_question(header: str, codebook: Codebook | None) -> str | None:
    """Map a column header (or question value) to a codebook question id, if it is one."""
    return match_question_header(header, codebook).question_id


def match_question_header(header: str, codebook: Codebook | None) -> HeaderMatch:
    """Match a header to a codebook question, saying how (see :data:`EXACT_HOWS`).

    In order: the id, short name or full text exactly; then, for a header as long as a
    question text, the normalised text (case, spacing, punctuation, quotes), containment,
    and word-level similarity (difflib on words, at least :data:`SIMILAR_WORDS`, refused
    when two questions come close); last the number of 'Hypothesis 1' / 'H1' / 'Q10 ...'.
    """
    if codebook is None or not codebook.questions:
        return HeaderMatch(None)
    # Question values repeat on every row of a long file, so the matching is memoised
    # on the (immutable) question list.
    return _match_header(header, _question_key(codebook))


_LAST_QUESTIONS: list[Any] = [None, ()]


def _question_key(codebook: Codebook) -> tuple[tuple[str, str | None, str], ...]:
    """(id, short name, text) of each question, hashable; rebuilt only for another codebook
    (a wide file asks once per column)."""
    if _LAST_QUESTIONS[0] is not codebook.questions:
        _LAST_QUESTIONS[:] = [codebook.questions, tuple((q.id, q.short_name, q.text) for q in codebook.questions)]
    key: tuple[tuple[str, str | None, str], ...] = _LAST_QUESTIONS[1]
    return key


@functools.lru_cache(maxsize=64)
def _exact_names(questions: tuple[tuple[str, str | None, str], ...]) -> dict[str, HeaderMatch]:
    """Normalised id, short name and text of each question -> its match, first one winning
    (as the question-by-question comparison did). Built once per codebook: normalising
    every question again for each header made a 40,000-column file take over a minute."""
    names: dict[str, HeaderMatch] = {}
    for qid, short_name, qtext in questions:
        names.setdefault(_norm(qid), HeaderMatch(qid, "id"))
        if short_name:
            names.setdefault(_norm(short_name), HeaderMatch(qid, "short name"))
        names.setdefault(_norm(qtext), HeaderMatch(qid, "exact text"))
    names.pop("", None)
    return names


@functools.lru_cache(maxsize=4096)
def _match_header(header: str, questions: tuple[tuple[str, str | None, str], ...]) -> HeaderMatch:
    text = _norm(header)
    if not text:
        return HeaderMatch(None)
    exact = _exact_names(questions).get(text)
    if exact is not None:
        return exact
    by_number: str | None = None
    number = NUMBER_PREFIX.match(text)
    if number:
        for qid, _, _ in questions:
            if re.fullmatch(rf"[a-z]*{number.group(1)}", _norm(qid)):
                by_number = qid
                break
    by_text = _match_text(normalise_text(header), questions)
    if by_text.question_id is None:
        if by_number is not None:
            return HeaderMatch(by_number, "number")
        return by_text
    if by_number is not None and by_number != by_text.question_id:
        return HeaderMatch(
            None, note=f"its number says {by_number} but its text is {by_text.question_id}'s "
            f"({by_text.how})",
        )
    return by_text


def _match_text(body: str, questions: tuple[tuple[str, str | None, str], ...]) -> HeaderMatch:
    if len(body) < LONG_HEADER:
        return HeaderMatch(None)
    texts = [(qid, normalise_text(qtext)) for qid, _, qtext in questions]
    same = [qid for qid, qtext in texts if body == qtext]
    if len(same) == 1:
        return HeaderMatch(same[0], "normalised text")
    inside = [qid for qid, qtext in texts if body in qtext]
    around = [qid for qid, qtext in texts if qtext and qtext in body]
    if len(around) == 1:
        return HeaderMatch(around[0], "contains question text")
    if len(inside) == 1:
        return HeaderMatch(inside[0], "part of question text")
    if len(inside) > 1:
        return HeaderMatch(None, note=f"its text is part of several questions ({', '.join(inside)})")
    words = body.split()
    scores = sorted(
        ((difflib.SequenceMatcher(None, words, qtext.split(), autojunk=False).ratio(), qid)
         for qid, qtext in texts),
        reverse=True,
    )
    best, best_id = scores[0]
    if best < SIMILAR_WORDS:
        return HeaderMatch(None, note=f"closest question {best_id} is only {best:.2f} similar")
    if len(scores) > 1 and scores[1][0] > best - SIMILAR_MARGIN:
        return HeaderMatch(
            None, note=f"it is as similar to {best_id} ({best:.2f}) as to {scores[1][1]} ({scores[1][0]:.2f})"
        )
    return HeaderMatch(best_id, "similar words", round(best, 3))


# --- respondent attributes ----------------------------------------------------------------

ORGANISATION_WORDS = ("organisation", "organization", "organisations", "organizations", "org", "employer", "company")
TYPE_WORDS = ("type", "types", "kind", "sector", "category")


def attribution_name(header: str) -> str | None:
    """The normalised attribute name for a role or organisation column, else None.

    Forms asks 'What is your role?', 'Which organisation do you work for?', 'What type of
    organisation ...'; the report attributes quotes by ``role``, ``organisation_type``
    and ``organisation`` (and ``stakeholder``), so those columns get these names.
    """
    words = normalise_text(header).split()
    # A long header is a question to answer, not a field about the respondent.
    if not words or len(words) > 10:
        return None
    text = " ".join(words)
    organisation = any(word in ORGANISATION_WORDS for word in words)
    if (organisation and any(word in TYPE_WORDS for word in words)) or text in ("sector", "organisation type"):
        return "organisation_type"
    if "role" in words or "roles" in words or "job title" in text or text in (
        "job", "position", "profession", "occupation", "what is your job", "what is your position"
    ):
        return "role"
    if organisation:
        return "organisation"
    if "stakeholder" in words or "stakeholders" in words:
        return "stakeholder"
    return None


def _looks_like_free_text(header: str, cells: Sequence[Any]) -> bool:
    """A column that holds answers: a header as long as a hypothesis, or mostly long cells."""
    if len(normalise_text(header)) >= 80:
        return True
    filled = [words for cell in cells if (words := (cell if type(cell) is str else _cell(cell)).split())]
    return bool(filled) and sum(len(words) >= 5 for words in filled) * 2 >= len(filled)


def _attribute_columns(
    header: Sequence[str], used: set[int], chosen: Sequence[str] | None, drop: Sequence[str] = ()
) -> tuple[dict[int, str], dict[int, str], list[str]]:
    """Which columns become attributes and under what name.

    Returns (attributes: index -> name, dropped: index -> why, warnings). Recognised role
    and organisation columns take their normalised name; other columns keep their header.
    """
    wanted = {_norm(c) for c in chosen} if chosen is not None else None
    names: dict[int, str] = {}
    dropped: dict[int, str] = {}
    warnings: list[str] = []
    taken: set[str] = set()  # names.values(), as a set: a scan per column is quadratic
    for index, name in enumerate(header):
        if index in used:
            continue
        if not name:
            dropped[index] = "no header"
            continue
        recognised = attribution_name(name)
        key = _norm(name)
        if wanted is not None and key not in wanted and (recognised is None or recognised not in wanted):
            dropped[index] = "not chosen with --attribute"
            continue
        if wanted is None and key in drop:
            dropped[index] = "personal data (keep it with --attribute)"
            continue
        target = recognised or name
        if target in taken:
            if recognised is not None:
                warnings.append(
                    f"column {column_letter(index)} {name!r} also looks like the {recognised} column; "
                    f"kept under its own header"
                )
            target = name
        names[index] = target
        taken.add(target)
    return names, dropped, warnings


def _attribute_values(row: Sequence[Any], names: dict[int, str]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for index, name in names.items():
        value = row[index]
        if type(value) is str:  # the common case (CSV cells), kept short: wide files have 40k columns
            value = value.strip()
            if value:
                attributes[name] = value
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, JsonNumber):
            value = value.number()
        attributes[name] = value if isinstance(value, int | float | bool) else _cell(value).strip()
    return attributes


def _attribute_plans(header: Sequence[str], names: dict[int, str], dropped: dict[int, str]) -> list[ColumnPlan]:
    plans = []
    for index, name in names.items():
        recognised = attribution_name(header[index]) == name and _norm(header[index]) != name
        plans.append(ColumnPlan(column_letter(index), header[index], "attribute", name,
                                f"recognised {name} column" if recognised else "other column"))
    for index, why in dropped.items():
        plans.append(ColumnPlan(column_letter(index), header[index], "dropped", "", why))
    return plans


# --- planning ----------------------------------------------------------------------------------


def parse_column_map(values: Sequence[str]) -> list[tuple[str, str]]:
    """Parse repeated ``--map COLUMN=QUESTION`` values (a letter or an exact header).

    Split at the last '=' only, so a header may hold commas (every hypothesis does) and
    even '='; question ids never contain '='.
    """
    pairs = []
    for value in values:
        column, sep, question = value.rpartition("=")
        if not sep or not column.strip() or not question.strip():
            raise ImportError_(
                f"--map {value!r}: expected COLUMN=QUESTION, a column letter or exact header and a "
                "question id, e.g. --map \"D=H1\""
            )
        pairs.append((column.strip(), question.strip()))
    return pairs


def split_question_columns(value: str, header: Sequence[str]) -> list[str]:
    """Split a ``--question-columns`` value on commas, keeping whole headers that hold commas.

    At each comma boundary the longest run of comma-separated parts that is a header is
    taken; a part that is no header is left alone (and reported as an unknown column).
    """
    headers = {_norm(h) for h in header if h}
    parts = value.split(",")
    names: list[str] = []
    start = 0
    while start < len(parts):
        end = next((e for e in range(len(parts), start, -1) if _norm(",".join(parts[start:e])) in headers), start + 1)
        name = ",".join(parts[start:end]).strip()
        if name:
            names.append(name)
        start = end
    return names


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

    if not table.rows:
        raise ImportError_(f"{path}: the file has a header but no data rows")
    # Counted once (header.count per header is quadratic: 73 s on a 40k-column file).
    counts = collections.Counter(table.header)
    duplicates = {h for h, n in counts.items() if h and n > 1}
    if duplicates:
        raise ImportError_(f"{path}: row 1: duplicate column name(s): {', '.join(sorted(duplicates))}")

    text_index = _find(table.header, text_column, TEXT_COLUMNS, path, "response text")
    question_index = _find(table.header, question_column, QUESTION_COLUMNS, path, "question")
    if shape is None:
        # Two or more headers naming codebook questions make a Forms export even when
        # another column happens to be called 'Comments' or 'Feedback'.
        named_questions = sum(1 for h in table.header if match_question(h, codebook))
        long_file = (
            (text_index is not None or question_index is not None)
            and not question_columns and not column_map and named_questions < 2
        )
        shape = "long" if long_file else "wide"
    plan = ImportPlan(source=path, shape=shape, encoding=table.encoding, mapping={})
    plan.warnings += table.warnings + _headerless_columns(path, table)
    plan.file_hash = hashlib.sha256(path.read_bytes()).hexdigest()
    if shape == "long":
        if column_map:
            raise ImportError_(f"{path}: --map names question columns of a wide file; this import is long-shaped")
        _plan_long(plan, table, codebook, text_index, question_index, id_column,
                   respondent_column, attribute_columns, question, allow_unknown_questions)
    else:
        _plan_wide(plan, table, codebook, id_column, respondent_column, question_columns,
                   column_map or (), attribute_columns, allow_unknown_questions)
    plan.columns.sort(key=lambda c: column_index(c.letter) or 0)
    # vars() rather than dataclasses.asdict: the fields are plain values, and asdict's deep
    # copy took most of a second on a 10,000-column file.
    plan.mapping["columns"] = [dict(vars(c)) for c in plan.columns]

    seen: dict[str, int] = {}
    for response in plan.responses:
        if response.id in seen:
            raise ImportError_(
                f"{path}: row {response.source_row}: duplicate id {response.id!r} "
                f"(first at row {seen[response.id]})"
            )
        seen[response.id] = response.source_row or 0
    return plan


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
        rows = [number for number, row in table.rows if _cell(row[index]).strip()]
        if rows:
            warnings.append(
                f"{path}: row 1, column {column_letter(index)}: no header, so the column's "
                f"{len(rows)} non-empty cell(s) (first at row {rows[0]}) are not imported; give "
                "it a header to keep it"
            )
    return warnings


def _case_variants(path: Path, table: Table, index: int) -> None:
    """Refuse question values that differ only in case or spacing ('H1' and 'h1').

    They would be merged into one question (with a codebook) or kept as two (without), and
    either may be wrong: the file must say which it means.
    """
    first: dict[str, tuple[str, int]] = {}
    for number, row in table.rows:
        value = _cell(row[index]).strip()
        if not value:
            continue
        key = _norm(value)
        seen = first.setdefault(key, (value, number))
        if seen[0] != value:
            raise ImportError_(
                f"{path}: row {number}, column {column_letter(index)} {table.header[index]!r}: "
                f"question {value!r} differs only in case or spacing from {seen[0]!r} (row "
                f"{seen[1]}); write each question the same way throughout the file"
            )


def _check_question(
    value: str | None, codebook: Codebook | None, allow_unknown: bool, path: Path, row: int, field: str
) -> str | None:
    if not value:
        return None
    if codebook is None or not codebook.questions:
        return value
    matched = match_question(value, codebook)
    if matched:
        return matched
    if allow_unknown:
        return value
    raise ImportError_(
        f"{path}: row {row}, field {field!r}: question {value!r} is not in the codebook "
        f"(known: {', '.join(codebook.question_ids)}); pass --allow-unknown-questions to keep it"
    )


def _plan_long(
    plan: ImportPlan, table: Table, codebook: Codebook | None, text_index: int | None,
    question_index: int | None, id_column: str | None, respondent_column: str | None,
    attribute_columns: Sequence[str] | None, fixed_question: str | None, allow_unknown: bool,
) -> None:
    path = plan.source
    if text_index is None:
        raise ImportError_(
            f"{path}: no response text column found (looked for {', '.join(TEXT_COLUMNS)}; "
            f"columns: {', '.join(table.header)}); name it with --text-column"
        )
    id_index = _find(table.header, id_column, ID_COLUMNS, path, "id")
    respondent_index = _find(table.header, respondent_column, RESPONDENT_COLUMNS, path, "respondent")
    used = {i for i in (text_index, question_index, id_index, respondent_index) if i is not None}
    text_name = table.header[text_index]
    question_name = table.header[question_index] if question_index is not None else None
    plan.mapping = {
        "text": text_name,
        "question": question_name or (f"= {fixed_question}" if fixed_question else None),
        "id": table.header[id_index] if id_index is not None else "(hash of file, row, question)",
        "respondent": table.header[respondent_index] if respondent_index is not None else None,
    }
    for index, role, how in (
        (text_index, "text", "response text"), (question_index, "question", "question of each row"),
        (id_index, "id", "response id"), (respondent_index, "respondent", "respondent id"),
    ):
        if index is not None:
            plan.columns.append(ColumnPlan(column_letter(index), table.header[index], role, "", how))
    names, dropped, warnings = _attribute_columns(table.header, used, attribute_columns)
    plan.warnings += warnings
    plan.columns += _attribute_plans(table.header, names, dropped)
    fixed = _check_question(fixed_question, codebook, allow_unknown, path, 0, "--question") if fixed_question else None
    if question_index is not None:
        _case_variants(path, table, question_index)
    not_text: list[int] = []
    for number, row in table.rows:
        raw_text = row[text_index]
        if isinstance(raw_text, dict | list):
            raise ImportError_(f"{path}: row {number}, field {text_name!r}: expected text, got {type(raw_text).__name__}")
        if isinstance(raw_text, bool | int | float | JsonNumber) and table.encoding != "xlsx":
            not_text.append(number)
        text = _cell(raw_text)
        question = fixed
        if question_index is not None:
            question = _check_question(_cell(row[question_index]).strip() or None, codebook,
                                       allow_unknown, path, number, question_name or "question") or fixed
        raw_id = _cell(row[id_index]).strip() if id_index is not None else ""
        if id_index is not None and not raw_id:
            raise ImportError_(f"{path}: row {number}, field {table.header[id_index]!r}: empty id")
        plan.responses.append(
            Response(
                id=raw_id or stable_id(path, number, question),
                text=text,
                question=question,
                respondent=_cell(row[respondent_index]).strip() or None if respondent_index is not None else None,
                attributes=_attribute_values(row, names),
                tags=extract_tags(text),
                source_file=str(path.name),
                source_row=number,
            )
        )
    if not_text:
        plan.warnings.append(
            f"{path}: row {not_text[0]}, column {column_letter(text_index)} {text_name!r}: "
            f"{len(not_text)} response(s) are JSON numbers or true/false, not strings; each is "
            "imported as the text written in the file"
        )
    plan.mapping["attributes"] = sorted({k for r in plan.responses for k in r.attributes})


def _resolve_column(spec: str, header: Sequence[str], path: Path) -> int:
    """A ``--map`` column: an exact header (case and spacing aside) or a column letter."""
    by_name = [i for i, h in enumerate(header) if h == spec] or [
        i for i, h in enumerate(header) if _norm(h) == _norm(spec)
    ]
    by_letter = column_index(spec)
    in_range = by_letter if by_letter is not None and by_letter < len(header) else None
    if by_name and in_range is not None and by_name[0] != in_range:
        raise ImportError_(
            f"{path}: --map {spec!r} is both column {spec.upper()} ({header[in_range]!r}) and the header "
            f"of column {column_letter(by_name[0])}; use the other column's letter"
        )
    if by_name:
        return by_name[0]
    if in_range is not None:
        return in_range
    last = column_letter(len(header) - 1)
    if by_letter is not None:
        raise ImportError_(
            f"{path}: --map: there is no column {spec.upper()}; the header row has {len(header)} "
            f"columns (A to {last})"
        )
    listing = ", ".join(f"{column_letter(i)} {shorten(h, 30)!r}" for i, h in enumerate(header))
    raise ImportError_(
        f"{path}: --map: no column letter or header {spec!r}; the header row has {len(header)} "
        f"columns: {listing}"
    )


def _mapped_question(qid: str, codebook: Codebook | None, allow_unknown: bool, path: Path, spec: str) -> str:
    if codebook is None or not codebook.questions:
        return qid
    for known in codebook.question_ids:
        if _norm(known) == _norm(qid):
            return known
    if allow_unknown:
        return qid
    raise ImportError_(
        f"{path}: --map {spec}={qid}: {qid!r} is not a question in the project's codebook "
        f"(valid ids: {', '.join(codebook.question_ids)}); pass --allow-unknown-questions to keep it"
    )


def _plan_wide(
    plan: ImportPlan, table: Table, codebook: Codebook | None, id_column: str | None,
    respondent_column: str | None, question_columns: str | Sequence[str] | None,
    column_map: Sequence[tuple[str, str]], attribute_columns: Sequence[str] | None, allow_unknown: bool,
) -> None:
    path = plan.source
    header = table.header
    normalised = [_norm(h) for h in header]
    if isinstance(question_columns, str):
        question_columns = split_question_columns(question_columns, header)
    has_questions = codebook is not None and bool(codebook.questions)
    if not has_questions and not allow_unknown and not column_map and not question_columns:
        # Without a codebook the only names for the questions are the headers themselves;
        # importing them so, then again once a codebook exists, would hold every answer twice.
        raise ImportError_(
            f"{path}: this is a wide file (one column per question) and the project has no codebook "
            "to name its question columns. Add the codebook first: 'coder codebook add --example' "
            "(the built-in rapid-insight hypotheses H1-H9, Q10) or 'coder codebook add FILE'; or map "
            "the columns yourself with --map \"D=H1\" (repeatable); or pass --allow-unknown-questions "
            "to keep the column headers as question ids"
        )
    respondent_index = _find(header, respondent_column or id_column, (*RESPONDENT_COLUMNS, *ID_COLUMNS), path, "respondent id")
    questions: dict[int, ColumnPlan] = {}

    def add_question(index: int, qid: str, how: str, similarity: float | None = None, exact: bool = True) -> None:
        for other, taken in questions.items():
            if taken.target == qid:
                raise ImportError_(
                    f"{path}: columns {column_letter(other)} {shorten(header[other])!r} ({taken.how}) and "
                    f"{column_letter(index)} {shorten(header[index])!r} ({how}) both map to question {qid}; "
                    "name each column's question with --map \"LETTER=ID\""
                )
        questions[index] = ColumnPlan(column_letter(index), header[index], "question", qid, how, similarity, exact)

    for spec, qid in column_map:
        index = _resolve_column(spec, header, path)
        if index in questions:
            raise ImportError_(f"{path}: --map names column {column_letter(index)} {header[index]!r} twice")
        if index == respondent_index:
            raise ImportError_(
                f"{path}: --map {spec}={qid}: column {column_letter(index)} is the respondent id column"
            )
        add_question(index, _mapped_question(qid, codebook, allow_unknown, path, spec), "--map")
    if question_columns:
        for name in question_columns:
            found = _find(header, name, (), path, "question")
            assert found is not None  # _find raises for a name that is not a header
            index = found
            if index in questions:
                continue
            matched = match_question_header(header[index], codebook)
            if matched.question_id is None and codebook is not None and has_questions and not allow_unknown:
                raise ImportError_(
                    f"{path}: row 1, field {header[index]!r}: column does not match a codebook question "
                    f"(known: {', '.join(codebook.question_ids)}); map it with --map "
                    f"\"{column_letter(index)}=ID\" or pass --allow-unknown-questions to keep it"
                )
            add_question(index, matched.question_id or header[index],
                         f"--question-columns, {matched.how}" if matched.question_id else "--question-columns",
                         matched.similarity, matched.exact or not matched.question_id)

    used = set(questions) | ({respondent_index} if respondent_index is not None else set())
    columns: list[ColumnPlan] = []
    if respondent_index is not None:
        columns.append(ColumnPlan(column_letter(respondent_index), header[respondent_index], "respondent", "",
                                  "respondent id"))
    for index, name in enumerate(normalised):
        if index not in used and name in FORMS_METADATA:
            used.add(index)
            columns.append(ColumnPlan(column_letter(index), header[index], "dropped", "", "Forms metadata"))
    chosen = {_norm(c) for c in attribute_columns} if attribute_columns is not None else set()
    unmatched_free_text: set[int] = set()
    for index, name in enumerate(header):
        if index in used or not name:
            continue
        # Role and organisation columns are respondent fields, never questions, even when
        # a loose match (e.g. 'Q1. What is your role?') would say otherwise.
        if attribution_name(name) is not None or normalised[index] in FORMS_PERSONAL or normalised[index] in chosen:
            continue
        matched = match_question_header(name, codebook)
        if matched.question_id is not None and not question_columns:
            add_question(index, matched.question_id, matched.how, matched.similarity, matched.exact)
            used.add(index)
            continue
        if not _looks_like_free_text(name, [row[index] for _, row in table.rows]):
            continue
        if allow_unknown and not question_columns:
            add_question(index, name, "kept as its header (--allow-unknown-questions)", exact=False)
            used.add(index)
            continue
        unmatched_free_text.add(index)
        letter = column_letter(index)
        if matched.question_id is not None:
            why = f"matches question {matched.question_id} but is not among --question-columns"
        else:
            why = "matches no question in the codebook" + (f" ({matched.note})" if matched.note else "")
        plan.warnings.append(
            f"{path}: column {letter} {shorten(name, 60)!r} holds free text like a question but {why}; "
            f"kept as a respondent attribute. If it is a question, map it with --map \"{letter}=ID\""
        )
    by_key: dict[str, int] = {}
    for index, column in questions.items():
        other = by_key.setdefault(_norm(column.target), index)
        if other != index:
            raise ImportError_(
                f"{path}: row 1, columns {column_letter(other)} and {column_letter(index)}: questions "
                f"{questions[other].target!r} and {column.target!r} differ only in case or spacing; "
                "name them the same way (or map them with --map)"
            )
    if not questions:
        raise ImportError_(
            f"{path}: no question columns found for a wide (one column per question) file; "
            "map them with --map \"D=H1\" (repeatable), or use --text-column for a long file"
        )
    names, dropped, warnings = _attribute_columns(header, used, attribute_columns, drop=FORMS_PERSONAL)
    plan.warnings += warnings
    plan.columns = [*columns, *questions.values()]
    for column in _attribute_plans(header, names, dropped):
        if column_index(column.letter) in unmatched_free_text:
            column = replace(column, how="free text matching no question (see the warning)")
        plan.columns.append(column)
    plan.mapping = {
        "shape": "wide",
        "respondent": header[respondent_index] if respondent_index is not None else "(row number)",
        "questions": {header[i]: c.target for i, c in questions.items()},
    }
    for number, row in table.rows:
        respondent = _cell(row[respondent_index]).strip() if respondent_index is not None else str(number)
        attributes = _attribute_values(row, names)
        for index, column in questions.items():
            text = _cell(row[index])
            if not text.strip():
                continue
            question = column.target
            plan.responses.append(
                Response(
                    id=f"{respondent}-{question}" if respondent_index is not None else stable_id(path, number, question),
                    text=text,
                    question=question,
                    respondent=respondent,
                    attributes=dict(attributes),
                    tags=extract_tags(text),
                    source_file=str(path.name),
                    source_row=number,
                )
            )
    plan.mapping["attributes"] = sorted({k for r in plan.responses for k in r.attributes})


# --- writing ----------------------------------------------------------------------------------


def shorten(text: Any, width: int = 40) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis (for messages)."""
    value = re.sub(r"\s+", " ", str(text)).strip()
    return value if len(value) <= width else value[: width - 1] + "…"


def reimport_conflicts(store: Any, plan: ImportPlan) -> list[str]:
    """Ways in which ``plan`` would import answers already in the project under other question ids.

    Two checks, both needed:

    - by content (catches a re-export of the same survey, whose bytes differ): a response
      of the plan whose file name, row, respondent and text are already stored under a
      question id that this plan does not give them. Answering 'Yes' to two hypotheses is
      fine: only a question the store has *and* the plan lacks (with one the plan adds)
      counts, so an identical re-import is never a conflict.
    - by file hash (catches the same bytes under another file name): an earlier import of
      this exact file that sent a column to another question id, or that came from another
      file name, when this import would add its answers again under new ids.
    """
    problems: list[str] = []
    Key = tuple[int | None, str | None, str]
    planned: dict[Key, set[str | None]] = {}
    earlier_rows = store.response_keys_from_file(plan.source.name)
    # A first import (the common case, and the 100k-row benchmark) has nothing to compare.
    for response in plan.responses if earlier_rows else ():
        if (response.text or "").strip():  # a hand-built plan may hold no text
            planned.setdefault((response.source_row, response.respondent, response.text), set()).add(response.question)
    stored: dict[Key, set[str | None]] = {}
    for row, respondent, text, question in earlier_rows:
        key = (row, respondent, text)
        if key in planned:
            stored.setdefault(key, set()).add(question)
    clashes = [
        (key, sorted(map(str, stored[key] - questions)), sorted(map(str, questions - stored[key])))
        for key, questions in planned.items()
        if key in stored and stored[key] - questions and questions - stored[key]
    ]
    if clashes:
        (row, respondent, _), old, new = clashes[0]
        problems.append(
            f"by content, {len(clashes)} answer(s) with the same file name, row, respondent and text "
            f"are stored under other question ids (e.g. row {row}, respondent {respondent}: stored as "
            f"{shorten(old[0])!r}, now {shorten(new[0])!r})"
        )
    current = plan.mapping.get("questions") or {}
    for earlier in store.imports_of_file_hash(plan.file_hash):
        try:
            before = (json.loads(earlier["mapping"] or "{}") or {}).get("questions") or {}
        except json.JSONDecodeError:
            continue
        changed = [(h, before[h], current[h]) for h in current if h in before and before[h] != current[h]]
        earlier_name = Path(earlier["source_file"]).name
        if not changed and earlier_name != plan.source.name:
            # Without an id column, ids hash the file name: a renamed copy would get new ids.
            ids = [r.id for r in plan.responses]
            present = {r.id for r in store.responses(ids=ids)}
            fresh = sum(1 for i in ids if i not in present)
            if fresh:
                problems.append(
                    f"by file hash, the same content (sha256 {plan.file_hash[:12]}) was imported on "
                    f"{earlier['created_at'][:16].replace('T', ' ')} from {earlier_name}, and {fresh} of "
                    "its answers would be added again under new ids (a file without an id column gets "
                    "ids from its name)"
                )
                break
        if changed:
            header, old_id, new_id = changed[0]
            problems.append(
                f"by file hash, the same content (sha256 {plan.file_hash[:12]}) was imported on "
                f"{earlier['created_at'][:16].replace('T', ' ')} from {Path(earlier['source_file']).name} "
                f"with {len(changed)} column(s) under other question ids (e.g. column {shorten(header)!r}: "
                f"{shorten(old_id)!r} then, {shorten(new_id)!r} now)"
            )
            break
    return problems


def check_reimport(store: Any, plan: ImportPlan) -> None:
    """Refuse a plan that would store answers a second time under other question ids."""
    problems = reimport_conflicts(store, plan)
    if problems:
        raise ImportError_(
            f"{plan.source}: refused: this file was imported before under other question ids, so "
            f"importing it now would hold its answers twice; {'; and '.join(problems)}. Nothing was "
            "imported. Import it with the same mapping as before (nothing is added twice), or "
            "import it into a new project file (--db NEW.db)"
        )


def run_import(store: Any, plan: ImportPlan) -> tuple[int, int]:
    """Write a checked plan to the store in one transaction. Returns (added, skipped).

    Refuses (writing nothing) a plan that would hold answers already stored under other
    question ids; see :func:`reimport_conflicts`.
    """
    from coder.store import now

    with store.db.atomic():
        check_reimport(store, plan)
        added, skipped = store.add_responses(plan.responses)
        store.db.table("imports").insert(
            {
                "source_file": str(plan.source),
                "file_hash": plan.file_hash,
                "shape": plan.shape,
                "mapping": json.dumps(plan.mapping, ensure_ascii=False),
                "added": added,
                "skipped": skipped,
                "created_at": now(),
            }
        )
    return added, skipped
