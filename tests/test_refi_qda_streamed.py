"""The streamed .qdpx export: a project of a few hundred responses, written a batch at a time
(sources spooled, cases and sets one at a time), is complete and schema-valid."""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree as ET

from coder import refi_qda
from coder.report.model import collect_coded
from tests.report_project import CODEBOOK
from tests.test_report_streamed import build_project

NS = {"p": refi_qda.PROJECT_NS}


def test_streamed_qdpx_holds_every_source_case_and_set(tmp_path: Path) -> None:
    path = tmp_path / "out" / "project.qdpx"
    with build_project(tmp_path / "p.db", seed=3, flag_quotes=True, codebook=CODEBOOK) as store:
        coded = collect_coded(store)
        count = refi_qda.write_qdpx(store, path, created_at="2024-01-01T00:00:00+00:00")
    assert count == len(coded) == 360
    with zipfile.ZipFile(path) as archive:
        xml = archive.read("project.qde")
        assert refi_qda.validate_xml(xml, "Project.xsd") == []
        root = ET.fromstring(xml)
        sources = root.findall("p:Sources/p:TextSource", NS)
        assert [source.get("name") for source in sources] == [c.response.id for c in coded]
        for source in sources[:20]:
            text = archive.read(f"sources/{source.get('guid')}.txt").decode("utf-8")
            response = next(c.response for c in coded if c.response.id == source.get("name"))
            assert text == response.text
        assert len(archive.namelist()) == 361
    guids = {source.get("guid") for source in sources}
    # Each source is in exactly one set (its question) and, with a respondent, one case.
    members = Counter(
        ref.get("targetGUID") for ref in root.findall("p:Sets/p:Set/p:MemberSource", NS)
    )
    assert set(members) == guids and set(members.values()) == {1}
    in_cases = [ref.get("targetGUID") for ref in root.findall("p:Cases/p:Case/p:SourceRef", NS)]
    assert len(in_cases) == sum(1 for c in coded if c.response.respondent)
    assert set(in_cases) <= guids
    # The document keeps the schema's order of sections.
    sections = [child.tag.rsplit("}", 1)[-1] for child in root]
    assert sections == ["Users", "CodeBook", "Variables", "Cases", "Sources", "Sets"]
    # A code the labels use that the codebook lacks is declared.
    names = {code.get("name") for code in root.iter(f"{{{refi_qda.PROJECT_NS}}}Code")}
    assert "ghost_code" in names
