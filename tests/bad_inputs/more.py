"""The hostile half of the bad-input corpus (issue 15): generated families of cases.

- XLSX: every XML part the reader parses, damaged five ways (garbage, cut short, an entity
  bomb, an external entity, an external DTD); zip bombs; over-long cells; odd sheets.
- JSONL: the same hostile lines (deep nesting, 5,000-digit integers, lone surrogates,
  bad bytes, bad JSON, non-objects) through each reader: ``coder import``,
  ``coder train --from-file`` and ``coder agree``.
- CSV: encodings, NUL bytes, ragged rows, over-long cells, bad quoting.
- Codebooks (YAML and JSON): deep nesting, huge integers, surrogates, alias bombs, tags.
- Project files: not SQLite, damaged, cut short, another application's database, a newer
  schema, a tampered codebook, no codebook for precode.
"""

from __future__ import annotations

import io
import json
import sqlite3
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

from openpyxl import Workbook

from tests.bad_inputs.corpus import BadInput

IMPORT = ("import",)
GOOD_CSV = b"id,question,response\nn1,H1,Networks helped us spread the pathway.\n"


def HELPER_FILES() -> dict[str, bytes]:  # noqa: N802 - a constant, built lazily
    """Files the cases' commands refer to through ``{dir}``."""
    return {"good.csv": GOOD_CSV}


# --- XLSX -------------------------------------------------------------------------------


def good_xlsx() -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["id", "question", "response"])
    sheet.append(["x1", "H1", "Leadership mattered."])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _parts(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def _zip(parts: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _stored(parts: dict[str, bytes]) -> bytes:
    """The parts zipped without compression, so their bytes can be altered in place."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _with_part(name: str, content: bytes) -> bytes:
    parts = _parts(good_xlsx())
    parts[name] = content
    return _zip(parts)


LAUGHS = (
    b'<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]>"
)
XXE = b'<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
EXTERNAL_DTD = b'<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd">'


def _declare(xml: bytes, doctype: bytes, reference: bytes) -> bytes:
    """``xml`` with ``doctype`` after its declaration and ``reference`` in its first text."""
    if xml.startswith(b"<?xml"):
        end = xml.index(b"?>") + 2
        head, body = xml[:end], xml[end:]
    else:
        head, body = b'<?xml version="1.0" encoding="UTF-8"?>', xml
    if reference and b"<t>" in body:
        body = body.replace(b"<t>", b"<t>" + reference, 1)
    return head + doctype + body


#: Parts openpyxl parses when it reads a workbook (the theme, app properties and the
#: package's _rels/.rels are never parsed, so damage there cannot matter).
PARSED_PARTS = (
    "[Content_Types].xml",
    "xl/workbook.xml",
    "xl/_rels/workbook.xml.rels",
    "xl/worksheets/sheet1.xml",
    "xl/styles.xml",
    "docProps/core.xml",
)


def xlsx_part_cases() -> list[BadInput]:
    original = _parts(good_xlsx())
    cases = []
    for part in PARSED_PARTS:
        slug = part.replace("[", "").replace("]", "").replace("/", "_").replace(".", "_")
        xml = original[part]
        damaged = {
            "garbage": b"this is not XML <<< &&& >>>",
            "cut": xml[: len(xml) // 2],
            "entity_bomb": _declare(xml, LAUGHS, b"&lol9;"),
            "xxe": _declare(xml, XXE, b"&xxe;"),
        }
        for kind, content in damaged.items():
            name = f"xlsx_{slug}_{kind}.xlsx"
            cases.append(BadInput(name, IMPORT, _with_part(part, content), (name, "XLSX")))
        # A DOCTYPE naming an external DTD is harmless: the parser never fetches it (and
        # must not hang trying). The file imports.
        name = f"xlsx_{slug}_external_dtd.xlsx"
        cases.append(BadInput(name, IMPORT, _with_part(part, _declare(xml, EXTERNAL_DTD, b"")), ok=True))
    return cases


def _raw_deflate_zip(entries: list[tuple[str, bytes | tuple[bytes, int, int]]]) -> bytes:
    """A zip of deflated entries; an entry may be given as (raw deflate data, crc, size)."""
    out = io.BytesIO()
    central = []
    for name, content in entries:
        if isinstance(content, bytes):
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            data = compressor.compress(content) + compressor.flush()
            crc, size = zlib.crc32(content), len(content)
        else:
            data, crc, size = content
        offset = out.tell()
        encoded = name.encode()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size,
                              len(encoded), 0))
        out.write(encoded)
        out.write(data)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc,
                                   len(data), size, len(encoded), 0, 0, 0, 0, 0, offset) + encoded)
    start = out.tell()
    for record in central:
        out.write(record)
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central),
                          out.tell() - start, start, 0))
    return out.getvalue()


def zip_bomb(megabytes: int = 1100) -> bytes:
    """An XLSX of about 1 MB whose sheet unzips to ``megabytes`` MB: one cell of 'A's.

    The deflate stream is one compressed megabyte repeated (a full flush resets the
    compressor, so each copy decodes alone), so building it takes a second, not a minute.
    """
    parts = _parts(good_xlsx())
    head = (b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats'
            b'.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>')
    tail = b"</t></is></c></row></sheetData></worksheet>"
    chunk = b"A" * (1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    last = compressor.compress(tail) + compressor.flush()
    crc = zlib.crc32(head)
    for _ in range(megabytes):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + megabytes * len(chunk) + len(tail)
    sheet = (first + block * megabytes + last, crc, size)
    entries: list[tuple[str, bytes | tuple[bytes, int, int]]] = [
        (name, sheet if name == "xl/worksheets/sheet1.xml" else content)
        for name, content in parts.items()
    ]
    return _raw_deflate_zip(entries)


def _xlsx(rows: list[list[object]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def xlsx_cases() -> list[BadInput]:
    good = good_xlsx()
    parts = _parts(good)
    without_workbook = {k: v for k, v in parts.items() if k != "xl/workbook.xml"}
    without_sheet = {k: v for k, v in parts.items() if k != "xl/worksheets/sheet1.xml"}
    sheet = parts["xl/worksheets/sheet1.xml"]
    return [
        *xlsx_part_cases(),
        BadInput("zip_bomb_1gb.xlsx", IMPORT, zip_bomb(),
                 ("zip_bomb_1gb.xlsx", "1,024 MB", "--max-unzipped-mb")),
        BadInput("over_unzip_limit.xlsx", (*IMPORT, "--max-unzipped-mb", "1"),
                 _xlsx([["id", "question", "response"], *[[f"u{i}", "H1", "x" * 30_000] for i in range(60)]]),
                 ("over_unzip_limit.xlsx", "limit of 1 MB", "--max-unzipped-mb")),
        BadInput("long_cell_scan.xlsx", (*IMPORT, "--max-cell-chars", "1000"),
                 _xlsx([["id", "question", "response"], ["l1", "H1", "word " * 4000]]),
                 ("long_cell_scan.xlsx", "1,000", "--max-cell-chars")),
        BadInput("long_cell.xlsx", (*IMPORT, "--max-cell-chars", "1000"),
                 _xlsx([["id", "question", "response"], ["l1", "H1", "ok"], ["l2", "H1", "word " * 500]]),
                 ("long_cell.xlsx", "row 3", "column C", "--max-cell-chars")),
        BadInput("no_workbook_part.xlsx", IMPORT, _zip(without_workbook), ("no_workbook_part.xlsx", "XLSX")),
        BadInput("no_sheet_part.xlsx", IMPORT, _zip(without_sheet), ("no_sheet_part.xlsx", "worksheet")),
        BadInput("empty_zip.xlsx", IMPORT, _zip({}), ("empty_zip.xlsx", "XLSX")),
        BadInput("bad_crc.xlsx", IMPORT, _stored(parts).replace(b"Leadership", b"Leaderzhip"),
                 ("bad_crc.xlsx", "XLSX", "CRC")),
        BadInput("csv_named_xlsx.xlsx", IMPORT, GOOD_CSV, ("csv_named_xlsx.xlsx", "XLSX")),
        BadInput("ole_xls_named_xlsx.xlsx", IMPORT, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504,
                 ("ole_xls_named_xlsx.xlsx", "XLSX")),
        BadInput("shared_string_out_of_range.xlsx", IMPORT,
                 _with_part("xl/worksheets/sheet1.xml",
                            sheet.replace(b'<c r="C2" t="inlineStr"><is><t>Leadership mattered.</t></is></c>',
                                          b'<c r="C2" t="s"><v>999</v></c>')),
                 ("shared_string_out_of_range.xlsx",)),
        BadInput("bad_cell_reference.xlsx", IMPORT,
                 _with_part("xl/worksheets/sheet1.xml", sheet.replace(b'r="A2"', b'r="?!2"')),
                 ("bad_cell_reference.xlsx",)),
        BadInput("bad_number.xlsx", IMPORT,
                 _with_part("xl/worksheets/sheet1.xml",
                            sheet.replace(b'<c r="A2" t="inlineStr"><is><t>x1</t></is></c>',
                                          b'<c r="A2" t="n"><v>not-a-number</v></c>')),
                 ("bad_number.xlsx",)),
        BadInput("sheet_named_absent.xlsx", (*IMPORT, "--sheet", "Responses"), good,
                 ("sheet_named_absent.xlsx", "Responses")),
        BadInput("empty_sheet.xlsx", IMPORT, _xlsx([]), ("empty_sheet.xlsx", "empty")),
        BadInput("header_only.xlsx", IMPORT, _xlsx([["id", "question", "response"]]),
                 ("header_only.xlsx", "no data")),
        BadInput("duplicate_headers.xlsx", IMPORT,
                 _xlsx([["id", "response", "response"], ["d1", "a", "b"]]),
                 ("duplicate_headers.xlsx", "row 1", "duplicate column")),
        BadInput("xlsx_duplicate_ids.xlsx", IMPORT,
                 _xlsx([["id", "question", "response"], ["d1", "H1", "a"], ["d1", "H2", "b"]]),
                 ("xlsx_duplicate_ids.xlsx", "row 3", "duplicate id")),
        BadInput("xlsx_unknown_question.xlsx", IMPORT,
                 _xlsx([["id", "question", "response"], ["q1", "H99", "a"]]),
                 ("xlsx_unknown_question.xlsx", "row 2", "H99")),
    ]


# --- JSONL through every reader ------------------------------------------------------------


def _gold_line(**extra: object) -> str:
    return json.dumps({"id": "g1", "question": "H1", "text": "Leadership mattered.",
                       "labels": ["leadership"], **extra})


def hostile_lines() -> dict[str, tuple[bytes, tuple[str, ...]]]:
    """Second lines that break a JSONL file, with what the error must say besides file/row."""
    deep = "[" * 100_000 + "]" * 100_000
    return {
        "deep_nesting": (('{"id": "d", "text": ' + deep + "}").encode(), ("nested",)),
        "moderately_deep": (('{"id": "d", "text": "x", "meta": ' + "[" * 200 + "]" * 200 + "}").encode(),
                            ("nested",)),
        "huge_integer": (('{"id": "h", "text": "x", "score": ' + "9" * 5000 + "}").encode(),
                         ("score", "5000 digits")),
        "huge_integer_text": (('{"id": "h", "text": ' + "7" * 5000 + "}").encode(), ("text", "digits")),
        "lone_surrogate": (b'{"id": "s", "text": "broken \\ud800 text"}', ("text", "surrogate")),
        "lone_low_surrogate": (b'{"id": "s", "text": "x", "note": "\\udc00"}', ("note", "surrogate")),
        "surrogate_key": (b'{"id": "s", "text": "x", "\\ud83d": 1}', ("surrogate",)),
        "invalid_utf8": (b'{"id": "u", "text": "caf\xc3\xa9 \xff"}', ()),
        "unterminated": (b'{"id": "t", "text": "no end', ("JSON",)),
        "array_line": (b'["id", "text"]', ("object",)),
        "number_line": (b"42", ("object",)),
        "trailing_garbage": (b'{"id": "g", "text": "x"} and more', ("JSON",)),
    }


def jsonl_cases() -> list[BadInput]:
    cases = []
    readers = {
        "import": (IMPORT, '{"id": "j0", "question": "H1", "text": "Leadership mattered."}', "row 2", True),
        "train": (("train", "--from-file"), _gold_line(), "line 2", True),
        "agree": (("agree",), json.dumps({"coder": "a", "item": "i1", "label": "x"}), "line 2", False),
    }
    for reader, (command, first, row, db) in readers.items():
        for kind, (line, expect) in hostile_lines().items():
            name = f"{reader}_{kind}.jsonl"
            content = first.encode() + b"\n" + line + b"\n"
            where = ("line 2", "column") if kind == "invalid_utf8" and reader == "train" else (row,)
            cases.append(BadInput(name, command, content, (name, *where, *expect), db=db))
    return cases


# --- CSV -------------------------------------------------------------------------------------


def csv_cases() -> list[BadInput]:
    header = b"id,question,response\n"
    return [
        BadInput("whitespace_only.csv", IMPORT, b"   \n\n\t\n", ("whitespace_only.csv", "empty")),
        BadInput("bom_only.csv", IMPORT, b"\xef\xbb\xbf", ("bom_only.csv",)),
        BadInput("nul_in_header.csv", IMPORT, b"id,qu\x00estion,response\n1,H1,a\n",
                 ("nul_in_header.csv", "row 1", "NUL")),
        BadInput("nul_utf16_no_bom.csv", IMPORT, "id,question,response\n1,H1,a\n".encode("utf-16-be"),
                 ("nul_utf16_no_bom.csv", "UTF-16")),
        BadInput("utf16_bad_pair.csv", IMPORT,
                 b"\xff\xfe" + "id,question,response\n1,H1,".encode("utf-16-le") + b"\x00\xd8a\x00\n\x00",
                 ("utf16_bad_pair.csv", "row 2")),
        BadInput("utf8_bom_bad_byte.csv", IMPORT, b"\xef\xbb\xbf" + header + b"1,H1,bad \xff byte\n",
                 ("utf8_bom_bad_byte.csv", "row 2", "0xff")),
        BadInput("utf8_then_bad.csv", IMPORT, header + "1,H1,caf\u00e9\n".encode() + b"2,H1,\xe9t\xe9\n",
                 ("utf8_then_bad.csv", "row 3")),
        BadInput("encoded_surrogate.csv", IMPORT, header + b"1,H1,half \xed\xa0\x80 pair\n",
                 ("encoded_surrogate.csv", "row 2")),
        BadInput("unknown_encoding.csv", (*IMPORT, "--encoding", "no-such-codec"), GOOD_CSV,
                 ("unknown encoding", "no-such-codec")),
        BadInput("wrong_forced_encoding.csv", (*IMPORT, "--encoding", "ascii"),
                 header + "1,H1,caf\u00e9\n".encode(), ("wrong_forced_encoding.csv", "row 2", "ascii")),
        BadInput("too_many_fields.csv", IMPORT, header + b"1,H1,a\n2,H1,b,extra\n",
                 ("too_many_fields.csv", "row 3", "fields")),
        BadInput("too_few_fields.csv", IMPORT, header + b"1,H1,a\n2,H1\n",
                 ("too_few_fields.csv", "row 3", "fields")),
        BadInput("unterminated_quote.csv", IMPORT, header + b'1,H1,"never closed\n2,H1,b\n',
                 ("unterminated_quote.csv",)),
        BadInput("quote_in_field.csv", IMPORT, header + b'1,H1,a "b" c\n2,H1,"x"y\n',
                 ("quote_in_field.csv", "row 3")),
        BadInput("long_cell.csv", (*IMPORT, "--max-cell-chars", "1000"),
                 header + b"1,H1," + b"w" * 5000 + b"\n", ("long_cell.csv", "row 2", "1,000", "--max-cell-chars")),
        BadInput("duplicate_header.csv", IMPORT, b"id,response,response\n1,a,b\n",
                 ("duplicate_header.csv", "row 1", "duplicate column")),
        BadInput("empty_id.csv", IMPORT, header + b"1,H1,a\n,H1,b\n", ("empty_id.csv", "row 3", "empty id")),
        BadInput("unknown_question.csv", IMPORT, header + b"1,H42,a\n", ("unknown_question.csv", "row 2", "H42")),
        BadInput("wide_without_questions.csv", IMPORT, b"ID,Colour,Size\n1,red,big\n",
                 ("wide_without_questions.csv", "no question columns")),
        BadInput("map_missing_column.csv", (*IMPORT, "--map", "ZZ=H1"), b"ID,Answer\n1,text\n",
                 ("map_missing_column.csv", "ZZ")),
        BadInput("map_unknown_question.csv", (*IMPORT, "--map", "B=H77"), b"ID,Answer\n1,text\n",
                 ("map_unknown_question.csv", "H77")),
        BadInput("bad_map_syntax.csv", (*IMPORT, "--map", "B"), b"ID,Answer\n1,text\n", ("--map", "COLUMN=QUESTION")),
        BadInput("unsupported.pdf", IMPORT, b"%PDF-1.4\n", ("unsupported.pdf", "unsupported")),
        BadInput("binary_as_text.txt", IMPORT, bytes(range(256)) * 4, ("binary_as_text.txt", "NUL")),
        BadInput("jsonl_empty.jsonl", IMPORT, b"\n\n", ("jsonl_empty.jsonl", "empty")),
        BadInput("jsonl_text_object.jsonl", IMPORT, b'{"id": "o", "question": "H1", "text": {"a": 1}}\n',
                 ("jsonl_text_object.jsonl", "row 1", "text")),
        BadInput("jsonl_no_text.jsonl", IMPORT, b'{"id": "o", "question": "H1", "body": "x"}\n',
                 ("jsonl_no_text.jsonl", "text column")),
    ]


# --- codebooks ---------------------------------------------------------------------------------

CODEBOOK_YAML = (
    "name: tiny\nquestions:\n  - {id: H1, text: 'Leadership matters'}\nthemes:\n"
    "  - {id: leadership, label: Leadership, definition: 'Clinical leadership'}\n"
)


def codebook_cases() -> list[BadInput]:
    add = ("codebook", "add")
    deep_yaml = "name: deep\nthemes: " + "[" * 5000 + "]" * 5000 + "\n"
    deep_json = '{"name": "deep", "themes": ' + "[" * 100_000 + "]" * 100_000 + "}"
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
    ) + "name: bomb\nthemes: []\ndescription: *i\n"
    cases = [
        ("deep.yaml", deep_yaml.encode(), ("deep.yaml", "nested")),
        ("deep.json", deep_json.encode(), ("deep.json", "nested")),
        ("moderately_deep.yaml", ("name: d\nextra: " + "[" * 300 + "]" * 300 + "\n").encode(),
         ("moderately_deep.yaml", "nested")),
        ("huge_int.yaml", (CODEBOOK_YAML + "version: " + "1" * 5000 + "\n").encode(),
         ("huge_int.yaml", "digits")),
        ("huge_int.json", ('{"name": "n", "version": ' + "1" * 5000 + ', "themes": []}').encode(),
         ("huge_int.json", "version", "digits")),
        ("surrogate.yaml", (CODEBOOK_YAML.replace("'Clinical leadership'", '"Clinical \\ud800 x"')).encode(),
         ("surrogate.yaml", "definition", "surrogate")),
        ("surrogate.json", b'{"name": "n\\udfff", "themes": []}', ("surrogate.json", "name", "surrogate")),
        ("alias_bomb.yaml", laughs.encode(), ("alias_bomb.yaml", "expands")),
        ("python_tag.yaml", b"name: !!python/object/apply:os.system ['echo pwned']\nthemes: []\n",
         ("python_tag.yaml", "YAML")),
        ("latin1.yaml", CODEBOOK_YAML.replace("Clinical", "Cl\u00ednical").encode("latin-1"),
         ("latin1.yaml", "line 5", "utf-8")),
        ("utf16_bad.yaml", b"\xff\xfe" + CODEBOOK_YAML.encode("utf-16-le")[:-1], ("utf16_bad.yaml",)),
        ("empty.yaml", b"", ("empty.yaml", "mapping")),
        ("scalar.yaml", b"just a sentence\n", ("scalar.yaml", "mapping")),
        ("tabs.yaml", b"name: t\nthemes:\n\t- id: a\n", ("tabs.yaml", "YAML", "line 3")),
        ("trailing_comma.json", b'{"name": "n", "themes": [],}', ("trailing_comma.json", "JSON", "line 1")),
        ("themes_not_list.yaml", b"name: n\nthemes: leadership\n", ("themes_not_list.yaml", "themes")),
        ("theme_is_string.yaml", b"name: n\nthemes:\n  - leadership\n", ("theme_is_string.yaml", "themes[0]")),
        ("unknown_parent.yaml", (CODEBOOK_YAML + "  - {id: sub, label: S, definition: d, parent: ghost}\n").encode(),
         ("unknown_parent.yaml", "themes[1]", "ghost")),
        ("unknown_question.yaml", (CODEBOOK_YAML + "  - {id: q, label: Q, definition: d, questions: [H9]}\n").encode(),
         ("unknown_question.yaml", "themes[1]", "H9")),
        ("self_parent.yaml", (CODEBOOK_YAML + "  - {id: me, label: M, definition: d, parent: me}\n").encode(),
         ("self_parent.yaml", "themes[1]", "parent")),
        ("duplicate_question.yaml", CODEBOOK_YAML.replace(
            "questions:\n", "questions:\n  - {id: H1, text: 'Again'}\n").encode(),
         ("duplicate_question.yaml", "questions[1]", "duplicate")),
        ("empty_definition.yaml", CODEBOOK_YAML.replace("'Clinical leadership'", "'  '").encode(),
         ("empty_definition.yaml", "themes[0]", "definition")),
        ("gold_codes_not_list.json", b'{"name": "g", "codes": 5}', ("gold_codes_not_list.json",)),
        ("gold_code_without_id.json", b'{"name": "g", "codes": [{"label": "x"}]}',
         ("gold_code_without_id.json", "themes[0]")),
    ]
    return [BadInput(name, add, content, expect) for name, content, expect in cases]


# --- project files -------------------------------------------------------------------------------


def _project_bytes(setup: str) -> bytes:
    """A real project file, built by the store, then altered with SQL ``setup``."""
    from coder.codebook import builtin_codebook_path, load_codebook
    from coder.importer import plan_import, run_import
    from coder.store import Store

    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "p.db"
        good = Path(folder) / "good.csv"
        good.write_bytes(GOOD_CSV)
        with Store(db) as store:
            if "no codebook" not in setup:
                store.save_codebook(load_codebook(builtin_codebook_path()))
            run_import(store, plan_import(good, allow_unknown_questions=True))
        conn = sqlite3.connect(db, isolation_level=None)
        if setup and "no codebook" not in setup:
            conn.executescript(setup)
        conn.close()  # the last connection checkpoints the WAL: one self-contained file
        return db.read_bytes()


def project_cases() -> list[BadInput]:
    real = _project_bytes("")
    future = _project_bytes(
        "insert into _sqlite_migrations (migration_set, name, applied_at) "
        "values ('coder', 'm999_from_the_future', '2030-01-01');"
    )
    tampered = _project_bytes("update codebook_versions set codebook = '{\"name\": 5}';")
    other = sqlite3.connect(":memory:")
    other.execute("create table invoices (number, total)")
    other.execute("insert into invoices values (1, 9.5)")
    foreign = bytes(other.serialize())
    other.close()
    header = real[:100]
    good = "{dir}/good.csv"
    cases = [
        ("text_file.db", ("status",), b"id,question,response\n", ("text_file.db", "not an SQLite")),
        ("text_file_import.db", ("import", good), b"just some notes\n", ("text_file_import.db", "not an SQLite")),
        ("header_then_garbage.db", ("status",), header + b"\xde\xad" * 4000,
         ("header_then_garbage.db",)),
        ("header_then_garbage_import.db", ("import", good), header + b"\x00\xff" * 4000,
         ("header_then_garbage_import.db",)),
        ("truncated_status.db", ("status",), real[: len(real) // 3], ("truncated_status.db",)),
        ("truncated_import.db", ("import", good), real[: len(real) // 3], ("truncated_import.db",)),
        ("truncated_responses.db", ("responses",), real[: len(real) // 2], ("truncated_responses.db",)),
        ("future_schema_status.db", ("status",), future,
         ("future_schema_status.db", "schema version 999", "m999_from_the_future", "newer coder")),
        ("future_schema_import.db", ("import", good), future,
         ("future_schema_import.db", "schema version 999", "this coder knows schema version")),
        ("future_schema_codebook.db", ("codebook", "add", "--example"), future,
         ("future_schema_codebook.db", "schema version 999")),
        ("another_apps_database.db", ("import", good), foreign,
         ("another_apps_database.db", "not a coder project", "invoices")),
        ("another_apps_database_status.db", ("status",), foreign,
         ("another_apps_database_status.db", "not a coder project")),
        ("tampered_codebook.db", ("codebook", "show"), tampered,
         ("tampered_codebook.db", "codebook_versions", "version 1")),
        ("tampered_codebook_import.db", ("import", good), tampered,
         ("tampered_codebook_import.db", "codebook_versions")),
        ("no_codebook_precode.db", ("precode",), _project_bytes("no codebook"),
         ("no_codebook_precode.db", "codebook add")),
    ]
    return [BadInput(name, command, content, expect, project=True)
            for name, command, content, expect in cases]


def cases() -> list[BadInput]:
    """Every generated case."""
    return [*xlsx_cases(), *jsonl_cases(), *csv_cases(), *codebook_cases(), *project_cases()]
