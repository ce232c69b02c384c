"""Issue 15, item 8 (outputs): control characters in responses, attributes and notes.

ESC, vertical tab, form feed, NUL and other C0 controls crashed the XLSX export and report
(openpyxl's IllegalCharacterError) and made the .qdpx XML malformed. Every export now
writes, with each such character shown as U+FFFD in XLSX and REFI-QDA (XML 1.0 cannot hold
them) and kept as is in CSV and JSONL (plain text that can); a terminal gets escapes.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from coder.cells import XLSX_CELL_LIMIT, safe_for_terminal, xlsx_text, xml_text
from coder.cli import cli
from coder.store import Store
from coder.xlsx_stream import cell_xml
from schemas import Codebook, Labels, Question, Response, Theme

CONTROL = "\x1b[2J\x1b]0;owned\x07 text\x0bwith\x0cfeeds\x00and\x1fall\x7f"
CODEBOOK = Codebook(
    name="Controls\x1b[1m",
    questions=[Question(id="H1", short_name="Path\x0bways", text="Whole \x1bpathway")],
    themes=[Theme(id="funding", label="Fund\x08ing", definition="Money\x0c.")],
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    db = tmp_path / "p.db"
    with Store(db) as store:
        store.save_codebook(CODEBOOK)
        store.add_responses(
            [
                Response(
                    id="c1",
                    text=CONTROL,
                    question="H1",
                    respondent="p\x1b1",
                    attributes={"role": "Boss\x0b", "org\x1bname": "x\x00y"},
                ),
                Response(id="c2", text="=1+1 plain", question="H1", respondent="p2"),
            ]
        )
        store.add_decision(
            response_id="c1",
            reviewer="ana\x1b",
            action="correct",
            labels=Labels(question="H1", stance="resonates", themes=["funding"], quote=True),
            note="see \x1b[31mred",
        )
    return db


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_xlsx_export_writes_control_characters_as_replacement(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.xlsx"
    _run("export", "--db", str(project), "--out", str(out))
    sheet = load_workbook(out).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    header = list(rows[0])
    first = dict(zip(header, rows[1], strict=True))
    assert first["text"] == xml_text(CONTROL)
    assert first["text"].count("\ufffd") == 7 and "\x1b" not in first["text"]
    assert first["respondent"] == "p\ufffd1"
    assert first["attr.org\ufffdname"] == "x\ufffdy"
    assert first["notes"] == "ana\ufffd: see \ufffd[31mred"
    second = dict(zip(header, rows[2], strict=True))
    assert second["text"] == "=1+1 plain"  # a string, never a formula
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, len(header)).column_letter}3"


def test_csv_and_jsonl_keep_the_text_exactly(project: Path, tmp_path: Path) -> None:
    _run("export", "--db", str(project), "--out", str(tmp_path / "out.jsonl"))
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text("utf-8").splitlines()]
    assert rows[0]["text"] == CONTROL
    _run("export", "--db", str(project), "--out", str(tmp_path / "out.csv"))
    assert CONTROL in (tmp_path / "out.csv").read_text("utf-8-sig")


def test_qdpx_and_qdc_are_well_formed_xml(project: Path, tmp_path: Path) -> None:
    qdpx = tmp_path / "out.qdpx"
    _run("export", "--db", str(project), "--out", str(qdpx))
    with zipfile.ZipFile(qdpx) as archive:
        xml = archive.read("project.qde")
        sources = {name: archive.read(name).decode("utf-8") for name in archive.namelist()}
    root = ElementTree.fromstring(xml)  # raised 'not well-formed' before
    assert any("Fund\ufffding" == element.get("name") for element in root.iter())
    texts = [text for name, text in sources.items() if name.startswith("sources/")]
    assert xml_text(CONTROL) in texts
    try:
        from coder.refi_qda import validate_xml

        assert validate_xml(xml, "Project.xsd") == []
    except ImportError:  # xmlschema is a test extra
        pass
    qdc = tmp_path / "out.qdc"
    _run("export", "--db", str(project), "--out", str(qdc))
    ElementTree.fromstring(qdc.read_bytes())


def test_xlsx_cells_over_excels_limit_are_cut_with_a_note() -> None:
    long = "a" * (XLSX_CELL_LIMIT + 10)
    cut = xlsx_text(long)
    assert len(cut) == XLSX_CELL_LIMIT and cut.endswith("has all of it]")
    assert "32,777 characters" in cut
    assert xlsx_text("short") == "short"


def test_stream_cells_are_typed_and_escaped() -> None:
    assert cell_xml("A1", None) == "" and cell_xml("A1", "") == ""
    assert cell_xml("A1", True) == '<c r="A1" t="b"><v>1</v></c>'
    assert cell_xml("B2", 3) == '<c r="B2"><v>3</v></c>'
    assert cell_xml("B2", 0.5) == '<c r="B2"><v>0.5</v></c>'
    # Too big for a double, or not finite: text, so no digit is lost.
    assert 't="inlineStr"' in cell_xml("B2", 2**60) and 't="inlineStr"' in cell_xml("B2", float("nan"))
    assert cell_xml("C3", "=SUM(A1)<b>&\r\x1b") == (
        '<c r="C3" t="inlineStr"><is><t xml:space="preserve">=SUM(A1)&lt;b&gt;&amp;&#13;\ufffd'
        "</t></is></c>"
    )


def test_safe_for_terminal_shows_escapes() -> None:
    shown = safe_for_terminal("a\x1b[31mred\x07\r\n\tx\u202ey\x9b")
    assert shown == "a\\x1b[31mred\\x07\\x0d\n\tx\\u202ey\\x9b"
    assert "\x1b" not in shown and safe_for_terminal("plain\ttext\n") == "plain\ttext\n"
