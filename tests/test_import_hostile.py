"""Imports that used to go silently wrong now warn or refuse, naming file, row and column."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from openpyxl import Workbook

from coder.cli import cli
from coder.importer import plan_import
from coder.store import Store


def test_a_hash_header_is_the_header_not_a_comment(tmp_path: Path) -> None:
    path = tmp_path / "hash.csv"
    path.write_text("#,question,response\n1,H1,Leadership mattered.\n2,H2,Data.\n")
    plan = plan_import(path, allow_unknown_questions=True)
    assert [r.text for r in plan.responses] == ["Leadership mattered.", "Data."]
    assert any("hash.csv: row 1, column A" in w and "header" in w for w in plan.warnings)


def test_a_comment_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "commented.csv"
    path.write_text("# exported from Forms\nid,question,response\n1,H1,Leadership.\n")
    plan = plan_import(path, allow_unknown_questions=True)
    assert [r.source_row for r in plan.responses] == [3]
    assert any("commented.csv: row 1, column A" in w and "comment" in w for w in plan.warnings)


def test_a_column_without_header_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "noheader.csv"
    path.write_text("id,question,response,\n1,H1,Leadership.,kept nowhere\n")
    plan = plan_import(path, allow_unknown_questions=True)
    assert any(
        "noheader.csv: row 1, column D: no header" in w and "row 2" in w for w in plan.warnings
    )
    # In XLSX, data right of the last header is no longer cut off unseen.
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["id", "question", "response"])
    sheet.append(["x1", "H1", "Leadership.", None, "stray note"])
    xlsx = tmp_path / "stray.xlsx"
    workbook.save(xlsx)
    plan = plan_import(xlsx, allow_unknown_questions=True)
    assert any("stray.xlsx: row 1, column E: no header" in w for w in plan.warnings)


def test_json_constants_and_numbers_keep_their_spelling(tmp_path: Path) -> None:
    path = tmp_path / "values.jsonl"
    lines = [
        '{"id": "a", "question": "H1", "text": true, "score": 1.50}',
        '{"id": "b", "question": "H1", "text": NaN}',
        '{"id": "c", "question": "H1", "text": Infinity}',
        '{"id": "d", "question": "H1", "text": 1.50}',
        json.dumps({"id": "e", "question": "H1", "text": "plain"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    plan = plan_import(path, allow_unknown_questions=True)
    assert [r.text for r in plan.responses] == ["true", "NaN", "Infinity", "1.50", "plain"]
    assert plan.responses[0].attributes["score"] == 1.5  # attributes stay numbers
    assert any("values.jsonl: row 1, column" in w and "4 response(s)" in w for w in plan.warnings)


def test_xlsx_booleans_read_as_excel_shows_them(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["id", "question", "response"])
    sheet.append(["x1", "H1", True])
    path = tmp_path / "bool.xlsx"
    workbook.save(path)
    plan = plan_import(path, allow_unknown_questions=True)
    assert plan.responses[0].text == "TRUE"


def test_warnings_reach_the_user_through_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    runner = CliRunner()
    assert runner.invoke(cli, ["codebook", "add", "--example", "--db", str(db)]).exit_code == 0
    path = tmp_path / "hash.csv"
    path.write_text("#,question,response\n1,H1,Leadership mattered.\n")
    result = runner.invoke(cli, ["import", str(path), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "row 1, column A" in result.output
    with Store(db) as store:
        assert [r.text for r in store.responses()] == ["Leadership mattered."]
