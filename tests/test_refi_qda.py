"""REFI-QDA exchange: .qdc codebook and .qdpx project, validated against the REFI schemas."""

from __future__ import annotations

import uuid
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml
from click.testing import CliRunner

from coder import refi_qda
from coder.cli import cli
from coder.errors import CodebookError
from coder.store import Store
from tests.report_project import CODEBOOK, project  # noqa: F401  (fixture)

NS = {"p": refi_qda.PROJECT_NS, "c": refi_qda.CODEBOOK_NS}

pytest.importorskip("xmlschema", reason="xmlschema (test extra) validates REFI-QDA output")


def test_qdc_is_schema_valid_with_nested_codes() -> None:
    data = refi_qda.codebook_to_qdc(CODEBOOK)
    assert refi_qda.validate_xml(data, "Codebook.xsd") == []
    root = ET.fromstring(data)
    parent = root.find("c:Codes/c:Code[@name='System working']", NS)
    assert (
        parent is not None and parent.find("c:Code", NS).get("name") == "Primary and secondary care"
    )  # type: ignore[union-attr]
    assert [s.get("name") for s in root.findall("c:Sets/c:Set", NS)] == [
        "H1: Pathways",
        "H2: Policy levers",
    ]


def test_guids_are_valid_uuids_and_stable_per_code() -> None:
    first = ET.fromstring(refi_qda.codebook_to_qdc(CODEBOOK))
    renamed = CODEBOOK.model_copy(update={"name": "Another name"})
    second = ET.fromstring(refi_qda.codebook_to_qdc(renamed))
    guids = [code.get("guid") for code in first.iter(f"{{{refi_qda.CODEBOOK_NS}}}Code")]
    assert guids == [code.get("guid") for code in second.iter(f"{{{refi_qda.CODEBOOK_NS}}}Code")]
    assert len(set(guids)) == len(guids) == 5
    for value in guids:
        uuid.UUID(value)  # raises if not a UUID


def test_schema_validation_catches_a_broken_document() -> None:
    broken = refi_qda.codebook_to_qdc(CODEBOOK).replace(
        b'isCodable="true"', b'isCodable="maybe"', 1
    )
    assert refi_qda.validate_xml(broken, "Codebook.xsd")


def test_qdpx_is_schema_valid_with_evidence_offsets(project: Store, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "project.qdpx"
    assert refi_qda.write_qdpx(project, path, created_at="2024-01-01T00:00:00+00:00") == 11
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        xml = archive.read("project.qde")
        assert refi_qda.validate_xml(xml, "Project.xsd") == []
        root = ET.fromstring(xml)
        sources = {s.get("name"): s for s in root.findall("p:Sources/p:TextSource", NS)}
        assert len(sources) == 11 and len(names) == 12
        r02 = sources["r02"]
        text = archive.read(f"sources/{r02.get('guid')}.txt").decode("utf-8")
    assert r02.get("plainTextPath") == f"internal://{r02.get('guid')}.txt"
    codes = {c.get("guid"): c.get("name") for c in root.iter(f"{{{refi_qda.PROJECT_NS}}}Code")}
    coded = {}
    for selection in r02.findall("p:PlainTextSelection", NS):
        start, end = int(selection.get("startPosition")), int(selection.get("endPosition"))  # type: ignore[arg-type]
        code = codes[selection.find("p:Coding/p:CodeRef", NS).get("targetGUID")]  # type: ignore[union-attr]
        coded[code] = text[start:end]
    assert coded["Primary and secondary care"] == "primary and secondary care"
    assert coded["Funding"] == "joining funding up"
    assert coded["Resonates"] == text and coded["Flagged quote"] == text
    users = {u.get("name") for u in root.findall("p:Users/p:User", NS)}
    assert users == {"alice", "bob", "model:test-model"}
    # Reviewer notes travel as notes.
    assert [
        n.findtext("p:PlainTextContent", namespaces=NS) for n in root.findall("p:Notes/p:Note", NS)
    ] == ["blank answer"]


def test_locate_tolerates_case_spacing_quotes_and_ellipses() -> None:
    text = "We need  Clinical champions\nwho tell a story."
    assert refi_qda.locate(text, "clinical champions who") == (9, 31)
    assert refi_qda.locate(text, '"…tell a story"') == (text.index("tell"), text.index("."))
    assert refi_qda.locate(text, "not there") is None and refi_qda.locate(text, None) is None


def test_qdc_round_trip_keeps_hierarchy_and_definitions() -> None:
    rich = CODEBOOK.model_copy(deep=True)
    rich.themes[0].include = ["mentions patients"]
    rich.themes[0].examples = ["Better for patients."]
    imported = refi_qda.qdc_to_codebook(refi_qda.codebook_to_qdc(rich), name="Imported")
    by_label = {t.label: t for t in imported.themes}
    assert by_label["Primary and secondary care"].parent == by_label["System working"].id
    assert by_label["Patient benefit"].definition == "Benefits to patients and carers."
    assert by_label["Patient benefit"].include == ["mentions patients"]
    assert by_label["Patient benefit"].examples == ["Better for patients."]


def test_import_of_another_tools_qdc(tmp_path: Path) -> None:
    # As ATLAS.ti writes them: upper-case GUIDs, code groups as sets, no coder prefixes.
    qdc = tmp_path / "atlas.qdc"
    qdc.write_text(
        '<?xml version="1.0" encoding="utf-8"?>'
        '<CodeBook xmlns="urn:QDA-XML:codebook:1.0" origin="ATLAS.ti">'
        '<Codes><Code guid="1FF58B12-6F6F-4B0C-8BE5-BBDC91F55294" name="Barriers" isCodable="true">'
        "<Description>Things in the way.</Description>"
        '<Code guid="2FF58B12-6F6F-4B0C-8BE5-BBDC91F55294" name="Cost" isCodable="true"/></Code>'
        '<Code guid="3FF58B12-6F6F-4B0C-8BE5-BBDC91F55294" name="Barriers" isCodable="true"/>'
        "</Codes></CodeBook>",
        encoding="utf-8",
    )
    out = tmp_path / "codebook.yaml"
    result = CliRunner().invoke(cli, ["codebook", "import-qdc", str(qdc), "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(out.read_text())
    assert [(t["id"], t.get("parent"), t["definition"]) for t in data["themes"]] == [
        ("barriers", None, "Things in the way."),
        ("cost", "barriers", "Cost"),
        ("barriers_2", None, "Barriers"),
    ]


def test_import_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(CodebookError, match="not well-formed"):
        refi_qda.qdc_to_codebook(b"<CodeBook><Codes>", source="bad.qdc")
    with pytest.raises(CodebookError, match="expected <CodeBook>"):
        refi_qda.qdc_to_codebook(b"<Other/>", source="bad.qdc")


def test_export_command_writes_qdpx_and_qdc(project: Store, tmp_path: Path) -> None:  # noqa: F811
    for name in ("p.qdpx", "c.qdc"):
        result = CliRunner().invoke(
            cli, ["export", "--db", str(project.path), "--out", str(tmp_path / name)]
        )
        assert result.exit_code == 0, result.output
    assert zipfile.is_zipfile(tmp_path / "p.qdpx")
    assert refi_qda.validate_xml((tmp_path / "c.qdc").read_bytes(), "Codebook.xsd") == []
