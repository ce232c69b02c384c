"""Import responses from CSV, XLSX and JSONL files.

Two shapes are understood:

- **long**: one row per response, with a text column and (optionally) a question column;
- **wide**: a Microsoft Forms style export, one row per respondent and one column per
  question; every non-empty answer cell becomes one response.

The whole file is read and checked before anything is written, and the write is one
transaction, so a bad file leaves the project exactly as it was. Ids are stable: the
file's id column when there is one, else a hash of file name + row + question, so
re-importing a file adds nothing twice.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coder.errors import ImportError_
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


@dataclass
class Table:
    """A rectangular table read from a file: header and rows with their source row numbers."""

    header: list[str]
    rows: list[tuple[int, list[Any]]]
    encoding: str


def _norm(name: Any) -> str:
    return re.sub(r"\s+", " ", str(name or "")).strip().lower()


def _position(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return line, column


def decode_bytes(data: bytes, path: Path, encoding: str | None = None) -> tuple[str, str]:
    """Decode file bytes: UTF-8 (with or without BOM) or cp1252 (Excel's default).

    Returns (text, encoding). Bad bytes raise an error naming file, line and column.
    """
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


def read_csv(path: Path, encoding: str | None = None, delimiter: str | None = None) -> Table:
    """Read a CSV file into a :class:`Table`, checking every row's shape."""
    data = path.read_bytes()
    if not data.strip():
        raise ImportError_(f"{path}: the file is empty")
    if b"\x00" in data:
        line, column = _position(data, data.index(b"\x00"))
        raise ImportError_(f"{path}: row {line}, column {column}: NUL byte (is this a binary file?)")
    text, used = decode_bytes(data, path, encoding)
    # Leading '#' lines are comments (e.g. a note on where the data came from).
    skipped_lines = 0
    while text.startswith("#"):
        newline = text.find("\n")
        text = "" if newline == -1 else text[newline + 1 :]
        skipped_lines += 1
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:20_000], delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","
    # One response may be a long essay; the csv module's default cap is 128 KiB.
    csv.field_size_limit(64 * 1024 * 1024)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except csv.Error as error:
        raise ImportError_(f"{path}: row 1: malformed CSV header: {error}") from None
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
        raise ImportError_(
            f"{path}: row {reader.line_num + skipped_lines}: malformed CSV: {error}"
        ) from None
    return Table(header=header, rows=rows, encoding=used)


def read_xlsx(path: Path, sheet: str | None = None) -> Table:
    """Read the first (or named) sheet of an XLSX workbook into a :class:`Table`."""
    import zipfile

    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise ImportError_(f"{path}: not a readable XLSX workbook ({error})") from None
    try:
        if sheet is not None:
            if sheet not in workbook.sheetnames:
                raise ImportError_(
                    f"{path}: no sheet named {sheet!r} (sheets: {', '.join(workbook.sheetnames)})"
                )
            worksheet = workbook[sheet]
        else:
            worksheet = workbook.worksheets[0]
        iterator = worksheet.iter_rows(values_only=True)
        header_row = next(iterator, None)
        if header_row is None or not any(cell is not None for cell in header_row):
            raise ImportError_(f"{path}: the sheet {worksheet.title!r} is empty")
        header = [str(cell).strip() if cell is not None else "" for cell in header_row]
        while header and not header[-1]:
            header.pop()
        rows: list[tuple[int, list[Any]]] = []
        for number, values in enumerate(iterator, start=2):
            cells = [("" if value is None else value) for value in values[: len(header)]]
            cells += [""] * (len(header) - len(cells))
            if not any(str(cell).strip() for cell in cells):
                continue
            rows.append((number, cells))
    finally:
        workbook.close()
    return Table(header=header, rows=rows, encoding="xlsx")


def read_jsonl(path: Path, encoding: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    """Read a JSON Lines file: one object per line."""
    data = path.read_bytes()
    if not data.strip():
        raise ImportError_(f"{path}: the file is empty")
    text, _ = decode_bytes(data, path, encoding)
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ImportError_(f"{path}: row {number}: invalid JSON: {error.msg} (column {error.colno})") from None
        if not isinstance(record, dict):
            raise ImportError_(f"{path}: row {number}: expected a JSON object, got {type(record).__name__}")
        records.append((number, record))
    return records


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
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def stable_id(source: Path, row: int, question: str | None) -> str:
    """Id for a response without an id column: hash of file name + row + question."""
    key = f"{source.name}\x1f{row}\x1f{question or ''}"
    return "r_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def match_question(header: str, codebook: Codebook | None) -> str | None:
    """Map a column header (or question value) to a codebook question id, if it is one."""
    if codebook is None:
        return None
    # Question values repeat on every row of a long file, so the matching is memoised
    # on the (immutable) question list.
    questions = tuple((q.id, q.short_name, q.text) for q in codebook.questions)
    return _match_question(header, questions)


@functools.lru_cache(maxsize=4096)
def _match_question(header: str, questions: tuple[tuple[str, str | None, str], ...]) -> str | None:
    text = _norm(header)
    for qid, short_name, qtext in questions:
        if text in (_norm(qid), _norm(qtext)):
            return qid
        if short_name and text == _norm(short_name):
            return qid
    # "H1", "H1: Pathways ...", "Hypothesis 1 ...", "Q10 ..."
    match = re.match(r"^(?:hypothesis|question|h|q)\s*(\d+)\b", text)
    if match:
        number = match.group(1)
        for qid, _, _ in questions:
            if re.fullmatch(rf"[a-z]*{number}", _norm(qid)):
                return qid
    for qid, _, qtext in questions:
        body = _norm(qtext)
        if len(text) >= 30 and (text in body or body in text):
            return qid
    return None


def plan_import(
    path: str | Path,
    *,
    codebook: Codebook | None = None,
    shape: Shape | None = None,
    text_column: str | None = None,
    question_column: str | None = None,
    id_column: str | None = None,
    respondent_column: str | None = None,
    question_columns: Sequence[str] | None = None,
    attribute_columns: Sequence[str] | None = None,
    question: str | None = None,
    sheet: str | None = None,
    encoding: str | None = None,
    allow_unknown_questions: bool = False,
) -> ImportPlan:
    """Read and check a file; return the responses it holds. Writes nothing."""
    path = Path(path)
    if not path.exists():
        raise ImportError_(f"{path}: file not found")
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
        table = read_xlsx(path, sheet)
    elif suffix in (".csv", ".tsv", ".txt"):
        table = read_csv(path, encoding, "\t" if suffix == ".tsv" else None)
    else:
        raise ImportError_(f"{path}: unsupported file type {suffix!r} (use .csv, .xlsx or .jsonl)")

    if not table.rows:
        raise ImportError_(f"{path}: the file has a header but no data rows")
    duplicates = {h for h in table.header if h and table.header.count(h) > 1}
    if duplicates:
        raise ImportError_(f"{path}: row 1: duplicate column name(s): {', '.join(sorted(duplicates))}")

    text_index = _find(table.header, text_column, TEXT_COLUMNS, path, "response text")
    question_index = _find(table.header, question_column, QUESTION_COLUMNS, path, "question")
    if shape is None:
        long_file = (text_index is not None or question_index is not None) and not question_columns
        shape = "long" if long_file else "wide"
    plan = ImportPlan(source=path, shape=shape, encoding=table.encoding, mapping={})
    plan.file_hash = hashlib.sha256(path.read_bytes()).hexdigest()
    if shape == "long":
        _plan_long(plan, table, codebook, text_index, question_index, id_column,
                   respondent_column, attribute_columns, question, allow_unknown_questions)
    else:
        _plan_wide(plan, table, codebook, id_column, respondent_column, question_columns,
                   attribute_columns, allow_unknown_questions)

    seen: dict[str, int] = {}
    for response in plan.responses:
        if response.id in seen:
            raise ImportError_(
                f"{path}: row {response.source_row}: duplicate id {response.id!r} "
                f"(first at row {seen[response.id]})"
            )
        seen[response.id] = response.source_row or 0
    return plan


def _attributes(
    header: Sequence[str], row: Sequence[Any], used: set[int], chosen: Sequence[str] | None, drop: Sequence[str] = ()
) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    wanted = {_norm(c) for c in chosen} if chosen is not None else None
    for index, name in enumerate(header):
        if index in used or not name:
            continue
        key = _norm(name)
        if wanted is not None and key not in wanted:
            continue
        if wanted is None and key in drop:
            continue
        value = row[index]
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        attributes[name] = value if isinstance(value, int | float | bool) else _cell(value).strip()
    return attributes


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
    fixed = _check_question(fixed_question, codebook, allow_unknown, path, 0, "--question") if fixed_question else None
    for number, row in table.rows:
        raw_text = row[text_index]
        if isinstance(raw_text, dict | list):
            raise ImportError_(f"{path}: row {number}, field {text_name!r}: expected text, got {type(raw_text).__name__}")
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
                attributes=_attributes(table.header, row, used, attribute_columns),
                tags=extract_tags(text),
                source_file=str(path.name),
                source_row=number,
            )
        )
    plan.mapping["attributes"] = sorted({k for r in plan.responses for k in r.attributes})


def _plan_wide(
    plan: ImportPlan, table: Table, codebook: Codebook | None, id_column: str | None,
    respondent_column: str | None, question_columns: Sequence[str] | None,
    attribute_columns: Sequence[str] | None, allow_unknown: bool,
) -> None:
    path = plan.source
    normalised = [_norm(h) for h in table.header]
    respondent_index = _find(table.header, respondent_column or id_column, (*RESPONDENT_COLUMNS, *ID_COLUMNS), path, "respondent id")
    if question_columns:
        indexes = []
        for name in question_columns:
            index = _find(table.header, name, (), path, "question")
            assert index is not None
            indexes.append(index)
    else:
        # Question columns: those matching a codebook question; without a codebook, the
        # columns holding long free text (Forms metadata and attributes are short).
        indexes = [i for i, h in enumerate(table.header) if match_question(h, codebook)]
        if not indexes:
            skip = set(FORMS_METADATA) | set(FORMS_PERSONAL)
            for index in range(len(table.header)):
                if normalised[index] in skip or index == respondent_index:
                    continue
                lengths = [len(_cell(row[index])) for _, row in table.rows if _cell(row[index]).strip()]
                if lengths and sum(lengths) / len(lengths) >= 25:
                    indexes.append(index)
    if not indexes:
        raise ImportError_(
            f"{path}: no question columns found for a wide (one column per question) file; "
            "name them with --question-columns, or use --text-column for a long file"
        )
    used = set(indexes) | ({respondent_index} if respondent_index is not None else set())
    used |= {i for i, n in enumerate(normalised) if n in FORMS_METADATA}
    question_ids = {}
    for index in indexes:
        header = table.header[index]
        matched = match_question(header, codebook)
        if matched is None and codebook is not None and codebook.questions and not allow_unknown:
            raise ImportError_(
                f"{path}: row 1, field {header!r}: column does not match a codebook question "
                f"(known: {', '.join(codebook.question_ids)}); pass --allow-unknown-questions to keep it"
            )
        question_ids[index] = matched or header
    plan.mapping = {
        "shape": "wide",
        "respondent": table.header[respondent_index] if respondent_index is not None else "(row number)",
        "questions": {table.header[i]: question_ids[i] for i in indexes},
    }
    for number, row in table.rows:
        respondent = _cell(row[respondent_index]).strip() if respondent_index is not None else str(number)
        attributes = _attributes(table.header, row, used, attribute_columns, drop=FORMS_PERSONAL)
        for index in indexes:
            text = _cell(row[index])
            if not text.strip():
                continue
            question = question_ids[index]
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


def run_import(store: Any, plan: ImportPlan) -> tuple[int, int]:
    """Write a checked plan to the store in one transaction. Returns (added, skipped)."""
    from coder.store import now

    with store.db.atomic():
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
