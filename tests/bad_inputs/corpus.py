"""Writes the bad-input corpus: each file with the command that reads it and what it must say.

Run ``python -m tests.bad_inputs.corpus DIR`` to write the files for a manual look; the
tests call :func:`write_corpus` on a temp dir. Generated rather than committed, so the
binary cases (NUL bytes, cp1252/undecodable bytes, a cut XLSX) stay readable as code.
"""

from __future__ import annotations

import io
import json
import random
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path

from openpyxl import Workbook

WORDS = "pathway adoption evidence leadership data funding patients staff system".split()


@dataclass(frozen=True)
class BadInput:
    """One file, the ``coder`` arguments that read it, and what the error must name.

    ``{dir}`` in ``command`` stands for the corpus folder (helper files such as
    ``good.csv`` live there). A ``project`` case is a project file: it is passed as
    ``--db`` and ``command`` is complete; it must come out byte for byte unchanged.
    """

    name: str
    command: tuple[str, ...]  # coder sub-command and options; the file path is appended
    content: bytes
    expect: tuple[str, ...] = field(default_factory=tuple)  # substrings of the error
    ok: bool = False  # True: the file must be accepted
    project: bool = False  # True: the file is the project (--db), not an input
    db: bool = True  # False: the command takes no --db


def _xlsx(rows: list[list[object]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _one_megabyte_text() -> str:
    rng = random.Random(1)
    text = " ".join(rng.choices(WORDS, k=200_000))
    return text[:1_000_000]


def corpus() -> list[BadInput]:
    """Every case; file names are unique so the error can be checked to name the file."""
    imp = ("import",)
    good_xlsx = _xlsx([["id", "question", "response"], ["x1", "H1", "Leadership mattered."]])
    return [
        BadInput(
            "wrong_encoding.csv",
            imp,
            b"id,question,response\n1,H1,caf\xe9 ok\n2,H2,bad \x81\x8d bytes\n",
            ("wrong_encoding.csv", "row 3", "--encoding"),
        ),
        BadInput(
            "utf16_without_bom_hint.csv",
            imp,
            "id,question,response\n1,H1,hello\n".encode("utf-16-le"),
            ("utf16_without_bom_hint.csv",),
        ),
        BadInput("empty.csv", imp, b"", ("empty.csv", "empty")),
        BadInput("header_only.csv", imp, b"id,question,response\n", ("header_only.csv", "no data")),
        BadInput(
            "missing_text_column.csv",
            imp,
            b"id,question,answer_text\n1,H1,hello\n",
            ("missing_text_column.csv", "text column", "answer_text"),
        ),
        BadInput(
            "named_text_column_absent.csv",
            (*imp, "--text-column", "comment_body"),
            b"id,question,response\n1,H1,hello\n",
            ("named_text_column_absent.csv", "comment_body"),
        ),
        BadInput(
            "duplicate_ids.csv",
            imp,
            b"id,question,response\n1,H1,hello\n2,H1,there\n1,H2,again\n",
            ("duplicate_ids.csv", "row 4", "duplicate id"),
        ),
        BadInput(
            "nul_bytes.csv",
            imp,
            b"id,question,response\n1,H1,fine\n2,H1,hel\x00lo\n",
            ("nul_bytes.csv", "row 3", "NUL"),
        ),
        BadInput(
            "not_a_workbook.xlsx",
            imp,
            b"PK\x03\x04 this is not a zip archive",
            ("not_a_workbook.xlsx", "XLSX"),
        ),
        BadInput(
            "truncated_workbook.xlsx",
            imp,
            good_xlsx[: len(good_xlsx) // 2],
            ("truncated_workbook.xlsx", "XLSX"),
        ),
        BadInput(
            "bad_line.jsonl",
            imp,
            b'{"id": "j1", "question": "H1", "text": "fine"}\n{"id": "j2", "text": \n',
            ("bad_line.jsonl", "row 2", "JSON"),
        ),
        BadInput(
            "one_megabyte_response.csv",
            imp,
            ('id,question,response\nbig1,H1,"' + _one_megabyte_text() + '"\n').encode(),
            ok=True,
        ),
        BadInput(
            "malformed.yaml",
            ("codebook", "add"),
            b"name: broken\nthemes:\n  - id: a\n    label: [unclosed\n",
            ("malformed.yaml", "YAML", "line"),
        ),
        BadInput(
            "cycle.yaml",
            ("codebook", "add"),
            b"name: cyclic\nthemes:\n"
            b"  - {id: a, label: A, definition: da, parent: c}\n"
            b"  - {id: b, label: B, definition: db, parent: a}\n"
            b"  - {id: c, label: C, definition: dc, parent: b}\n",
            ("cycle.yaml", "cycle", "parent"),
        ),
        BadInput(
            "duplicate_code.yaml",
            ("codebook", "add"),
            b"name: dup\nthemes:\n"
            b"  - {id: leadership, label: Leadership, definition: d}\n"
            b"  - {id: data, label: Data, definition: d}\n"
            b"  - {id: leadership, label: Leaders again, definition: d}\n",
            ("duplicate_code.yaml", "themes[2]", "duplicate"),
        ),
        BadInput(
            "theme_missing_definition.yaml",
            ("codebook", "add"),
            b"name: incomplete\nthemes:\n  - {id: a, label: A}\n",
            ("theme_missing_definition.yaml", "themes[0]", "definition"),
        ),
        BadInput(
            "not_a_mapping.json",
            ("codebook", "add"),
            json.dumps(["a", "list", "not", "a", "codebook"]).encode(),
            ("not_a_mapping.json",),
        ),
        *hostile_cases(),
        *more_cases(),
    ]


def _sqlite_bytes() -> bytes:
    connection = sqlite3.connect(":memory:")
    connection.execute("create table notes (text)")
    connection.execute("insert into notes values ('a colleague''s project')")
    data = connection.serialize()
    connection.close()
    return bytes(data)


def hostile_cases() -> list[BadInput]:
    """Issue 15: silent mis-imports and data loss that must now be clear errors."""
    imp = ("import",)
    return [
        BadInput(
            # Written by a script, never opened in Excel: the formula has no saved result,
            # and read with cached values only it would import as an empty answer.
            "formula_without_cached_value.xlsx",
            imp,
            _xlsx([["id", "question", "response"], ["f1", "H1", '=CONCAT("lead", "ership")']]),
            ("formula_without_cached_value.xlsx", "row 2", "column C", "formula"),
        ),
        BadInput(
            "question_case_variants.csv",
            imp,
            b"id,question,response\nc1,H1,Leadership mattered.\nc2,h1,Data mattered.\n",
            ("question_case_variants.csv", "row 3", "'h1'", "'H1'"),
        ),
        BadInput(
            "wide_case_variant_headers.csv",
            (*imp, "--allow-unknown-questions"),
            b"ID,Hx,hX\n1,Leadership mattered a great deal here,Funding was short all year long\n",
            ("wide_case_variant_headers.csv", "'Hx'", "'hX'"),
        ),
        BadInput(
            # `coder export --out` at a database: refused, the file stays as it was.
            "export_over_sqlite.db",
            ("export", "--format", "csv", "--out"),
            _sqlite_bytes(),
            ("export_over_sqlite.db", "SQLite"),
        ),
    ]


def write_corpus(folder: Path) -> list[tuple[BadInput, Path]]:
    """Write every case into ``folder``; returns (case, path) pairs."""
    from tests.bad_inputs.more import HELPER_FILES

    folder.mkdir(parents=True, exist_ok=True)
    for name, content in HELPER_FILES().items():
        (folder / name).write_bytes(content)
    written = []
    for case in corpus():
        path = folder / case.name
        path.write_bytes(case.content)
        written.append((case, path))
    return written


def command_line(case: BadInput, path: Path, project: Path) -> list[str]:
    """The ``coder`` arguments that run ``case`` (its file at ``path``) against ``project``."""
    args = [arg.replace("{dir}", str(path.parent)) for arg in case.command]
    if case.project:
        return [*args, "--db", str(path)]
    return [*args, str(path), *(["--db", str(project)] if case.db else [])]


def more_cases() -> list[BadInput]:
    """Issue 15 items 8-13: hostile XML, zip bombs, deep nesting, huge numbers, surrogates,
    encodings, damaged or foreign project files (tests/bad_inputs/more.py)."""
    from tests.bad_inputs.more import cases

    return cases()


if __name__ == "__main__":  # pragma: no cover - manual use
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "bad_inputs_out")
    for case, path in write_corpus(target):
        print(f"coder {' '.join(case.command)} {path}")
