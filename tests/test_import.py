"""Importing responses: shapes, encodings, tags, stable ids and bad input."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from coder.cli import cli
from coder.codebook import builtin_codebook_path, load_codebook
from coder.errors import ImportError_
from coder.importer import extract_tags, plan_import, run_import
from coder.store import Store

LONG_CSV = (
    "id,role,question,response\n"
    "a1,Innovator,H1,\"Yes, pathways matter. #NHSSomerset #ICS\"\n"
    "a2,NHS organisation,H2,\"Too prescriptive, \"\"national\"\" levers.\"\n"
)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def snapshot(db_path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db_path)
    rows = conn.execute("select id, text from responses order by id").fetchall()
    conn.close()
    return rows


@pytest.fixture
def project(db_path: Path) -> Path:
    code, output = invoke("codebook", "add", "--example", "--db", str(db_path))
    assert code == 0, output
    return db_path


def test_extract_tags() -> None:
    assert extract_tags("Yes #NHSSomerset and #ICS, again #ICS; not a#b or &#39;") == ["NHSSomerset", "ICS"]
    assert extract_tags("") == []


def test_long_csv_import_and_reimport(tmp_path: Path, project: Path) -> None:
    path = tmp_path / "responses.csv"
    path.write_text(LONG_CSV, encoding="utf-8")
    code, output = invoke("import", str(path), "--db", str(project))
    assert code == 0, output
    assert "Imported 2 new responses" in output
    with Store(project) as store:
        first = store.response("a1")
        assert first.question == "H1"
        assert first.tags == ["NHSSomerset", "ICS"]
        assert "#NHSSomerset" in first.text  # tags stay in the text as written
        assert first.attributes == {"role": "Innovator"}
        assert first.source_file == "responses.csv" and first.source_row == 2
        assert store.response("a2").text == 'Too prescriptive, "national" levers.'
    code, output = invoke("import", str(path), "--db", str(project))
    assert code == 0 and "Imported 0 new responses" in output and "2 already" in output


def test_hash_ids_are_stable_without_id_column(tmp_path: Path, project: Path) -> None:
    path = tmp_path / "noid.csv"
    path.write_text("question,text\nH1,first\nH1,second\n")
    with Store(project) as store:
        plan1 = plan_import(path, codebook=store.codebook()[1])
        plan2 = plan_import(path, codebook=store.codebook()[1])
    assert [r.id for r in plan1.responses] == [r.id for r in plan2.responses]
    assert len({r.id for r in plan1.responses}) == 2


def test_microsoft_forms_wide_export(tmp_path: Path, project: Path) -> None:
    path = tmp_path / "forms.xlsx"
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["ID", "Start time", "Completion time", "Email", "Name", "Role",
                  "Hypothesis 1: pathways", "H2 policy levers", "Q10. What is missing?"])
    sheet.append([1, "2023-12-11 10:00", "2023-12-11 10:05", "a@nhs.net", "Ann", "Innovator",
                  "Resonates strongly #Dorset", "", "Patient voice"])
    sheet.append([2, "2023-12-11 10:01", "2023-12-11 10:06", "b@nhs.net", "Bob", "NHS organisation",
                  "Partly", "Too prescriptive", None])
    workbook.save(path)
    code, output = invoke("import", str(path), "--db", str(project))
    assert code == 0, output
    with Store(project) as store:
        responses = list(store.responses())
    assert sorted((r.id, r.question) for r in responses) == [
        ("1-H1", "H1"), ("1-Q10", "Q10"), ("2-H1", "H1"), ("2-H2", "H2")]
    first = next(r for r in responses if r.id == "1-H1")
    # personal data columns dropped; the Role column is recognised as the attribute `role`
    assert first.attributes == {"role": "Innovator"}
    assert first.tags == ["Dorset"] and first.respondent == "1"


def test_jsonl_import(tmp_path: Path, project: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(
        json.dumps({"id": "j1", "text": "Evidence is key #HIWest", "question": "H7", "role": "Innovator"}) + "\n"
        + json.dumps({"id": "j2", "text": "", "question": "H7"}) + "\n"
    )
    code, output = invoke("import", str(path), "--db", str(project))
    assert code == 0, output
    with Store(project) as store:
        assert store.response("j1").tags == ["HIWest"]
        assert store.response("j2").text == ""


def test_encodings_bom_and_cp1252(tmp_path: Path, project: Path) -> None:
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfid,question,text\nb1,H1,caf\xc3\xa9 \xe2\x80\x93 ok\n")
    cp = tmp_path / "excel.csv"
    cp.write_bytes("id,question,text\nc1,H1,It\u2019s a \u00a3 question\n".encode("cp1252"))
    assert invoke("import", str(bom), "--db", str(project))[0] == 0
    code, output = invoke("import", str(cp), "--db", str(project))
    assert code == 0 and "cp1252" in output
    with Store(project) as store:
        assert store.response("b1").text == "café – ok"
        assert store.response("c1").text == "It\u2019s a \u00a3 question"


def test_bad_utf8_byte_names_row_and_column(tmp_path: Path, project: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"id,question,text\nx1,H1,caf\xc3\xa9\nx2,H1,bad \xff byte\n")
    code, output = invoke("import", str(path), "--db", str(project))
    assert code == 1
    assert "bad.csv: row 3, column 11: invalid UTF-8 byte 0xff" in output
    assert snapshot(project) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"id,question,text\n", "header but no data rows"),
        (b"id,question,comment_text\nx,H1,hello\n", "no response text column found"),
        (b"id,question,text\nx,H1,hello,extra\n", "row 2: has 4 fields but the header has 3"),
        (b"id,question,text\nx,H1,a\nx,H1,b\n", "row 3: duplicate id 'x' (first at row 2)"),
        (b"id,question,text\nx,H1,a\x00b\n", "row 2, column 7: NUL byte"),
        (b"id,question,text\nx,H99,hello\n", "row 2, field 'question': question 'H99' is not in the codebook"),
        (b"id,question,text\n,H1,hello\n", "row 2, field 'id': empty id"),
    ],
)
def test_bad_input_names_the_problem_and_writes_nothing(
    tmp_path: Path, project: Path, content: bytes, message: str
) -> None:
    good = tmp_path / "good.csv"
    good.write_text(LONG_CSV)
    assert invoke("import", str(good), "--db", str(project))[0] == 0
    before = snapshot(project)
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    code, output = invoke("import", str(path), "--db", str(project))
    assert code == 1
    assert message in " ".join(output.split()), output
    assert "input.csv" in output
    assert snapshot(project) == before


def test_malformed_xlsx(tmp_path: Path, project: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 this is not a workbook")
    code, output = invoke("import", str(path), "--db", str(project))
    assert code == 1 and "not a readable XLSX workbook" in output


def test_one_megabyte_response(tmp_path: Path, project: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("id,question,text\nbig,H1," + "word " * 200_000 + "\n")
    assert invoke("import", str(path), "--db", str(project))[0] == 0
    with Store(project) as store:
        assert len(store.response("big").text) == 1_000_000


def test_dry_run_writes_nothing(tmp_path: Path, project: Path) -> None:
    path = tmp_path / "responses.csv"
    path.write_text(LONG_CSV)
    code, output = invoke("import", str(path), "--dry-run", "--db", str(project))
    assert code == 0 and "Dry run" in output and "Preview" in output
    assert snapshot(project) == []


def test_import_is_one_transaction(tmp_path: Path, db_path: Path) -> None:
    codebook = load_codebook(builtin_codebook_path())
    path = tmp_path / "responses.csv"
    path.write_text(LONG_CSV)
    with Store(db_path) as store:
        plan = plan_import(path, codebook=codebook)
        plan.responses.append(plan.responses[0].model_copy(update={"id": "late", "text": None}))  # type: ignore[arg-type]
        with pytest.raises(sqlite3.IntegrityError):
            run_import(store, plan)
        assert store.count_responses() == 0


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImportError_, match="file not found"):
        plan_import(tmp_path / "nope.csv")


def test_renamed_copy_without_id_column_is_not_added_twice(tmp_path: Path, project: Path) -> None:
    path = tmp_path / "noid.csv"
    path.write_text("question,text\nH1,first\nH2,second\n")
    assert invoke("import", str(path), "--db", str(project))[0] == 0
    copy = tmp_path / "noid (1).csv"
    copy.write_bytes(path.read_bytes())
    code, output = invoke("import", str(copy), "--db", str(project))
    assert code == 1
    assert "by file hash" in output and "2 of its answers would be added again" in " ".join(output.split())
    assert len(snapshot(project)) == 2
