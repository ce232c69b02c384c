"""The Markdown rapid-insight report: golden file, mind maps, review status, quotes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.report import build_report
from coder.report.markdown import mermaid_mindmap, mermaid_text, render_markdown
from coder.store import Store
from tests.report_project import CODEBOOK, GOLDEN, project  # noqa: F401  (fixture)


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME; CODER_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("CODER_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with CODER_UPDATE_GOLDEN=1 once and review it"
    assert text == path.read_text(encoding="utf-8")


def test_markdown_report_matches_golden(project: Store) -> None:  # noqa: F811
    check_golden("report.md", render_markdown(build_report(project)))


def test_counts_parents_follow_the_codebook_rule_and_shares(project: Store) -> None:  # noqa: F811
    report = build_report(project)
    h1 = report.questions[0]
    assert (h1.question_id, h1.responses, h1.relevant, h1.excluded) == ("H1", 6, 5, 1)
    system = next(node for node in h1.themes if node.theme_id == "system_working")
    # Default rule: sub-themes do not imply their parent, so only r03 (reviewed) and r05
    # (model), coded with the parent itself, count; r02's sub-theme counts on its own.
    assert system.n == 2 and [c.theme_id for c in system.children] == ["primary_secondary"]
    assert system.children[0].n == 1
    assert system.share == pytest.approx(2 / 5)
    assert system.reviewed == 1
    # With the rule on, r02 counts under the parent too (once).
    implied = build_report(
        project, codebook=CODEBOOK.model_copy(update={"sub_themes_imply_parent": True})
    )
    system = next(node for node in implied.questions[0].themes if node.theme_id == "system_working")
    assert (system.n, system.reviewed) == (3, 2)
    assert report.summary.excluded_reasons == [("did not answer", 1), ("no content", 1)]
    assert report.summary.by_tag == [("BNSSG", 4), ("NHSSomerset", 3)]


def test_review_status_everywhere(project: Store) -> None:  # noqa: F811
    report = build_report(project)
    # r07 only has a quote flag: flagged, but its labels are still the model's.
    assert (report.status.reviewed, report.status.model_only, report.status.uncoded) == (4, 6, 1)
    text = render_markdown(report)
    assert text.count("Review status:") == 1 + len(report.questions)


def test_flagged_quotes_win_and_model_quotes_are_marked(project: Store) -> None:  # noqa: F811
    report = build_report(project)
    h1, h2 = report.questions
    assert [q.response_id for q in h1.quotes] == ["r02"] and h1.quotes_flagged
    assert h1.quotes[0].attribution == "Innovator, MedTech Ltd"
    assert h2.quotes[0].attribution == "Representative from a health innovation network, HI Wessex"
    # Without flagged quotes, the most confident coded responses stand in, clearly marked.
    unflagged = build_report(project, attribution_field="organisation")
    assert unflagged.summary.attribution_field == "organisation"
    project.add_decision(
        response_id="r02",
        reviewer="alice",
        action="unflag_quote",
        labels=project.final_labels()["r02"].labels.model_copy(update={"quote": False}),
    )  # type: ignore[union-attr]
    h1 = build_report(project).questions[0]
    assert not h1.quotes_flagged and h1.quotes[0].response_id == "r01"
    assert "chosen by confidence" in render_markdown(build_report(project))


def test_mermaid_node_text_is_escaped() -> None:
    assert mermaid_text('He said "yes"\n`now`') == "He said 'yes' 'now'"
    assert mermaid_text("   ") == "-"


def test_mermaid_mindmap_is_well_formed(project: Store) -> None:  # noqa: F811
    for question in build_report(project).questions:
        lines = mermaid_mindmap(question).splitlines()
        assert lines[0] == "mindmap"
        assert re.fullmatch(r'  root\(\("[^"`]+"\)\)', lines[1])
        for line in lines[2:]:
            indent = len(line) - len(line.lstrip(" "))
            assert indent % 2 == 0 and indent >= 4
            assert re.fullmatch(r'\s+\w+\["[^"`\n]+ \[n=\d+\]"\]|\s+none\["[^"]+"\]', line), line


def test_report_command_writes_all_formats(project: Store, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["report", "--db", str(project.path), "--out", str(out), "--format", "md,xlsx"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "report.xlsx"]
    assert "4 of 11 responses human-reviewed" in result.output
    assert "Generated " in (out / "report.md").read_text()


def test_report_command_rejects_unknown_format(project: Store, tmp_path: Path) -> None:  # noqa: F811
    result = CliRunner().invoke(cli, ["report", "--db", str(project.path), "--format", "pdf"])
    assert result.exit_code != 0 and "pdf" in result.output


def test_report_without_codebook_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["report", "--db", str(tmp_path / "empty.db"), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 1 and "no codebook" in result.output


def test_exclusions_the_model_explains_with_a_quote_are_counted_by_kind(tmp_path: Path) -> None:
    from schemas import Proposal
    from tests.llm_fake_server import make_project

    store = make_project(tmp_path / "p.coder", n=7)
    reasons = [
        "non-answer ('n/a')",
        "non-answer ('No comment')",
        "off-topic, like 'The connection keeps dropping.'",
        'off-topic, like "Can\'t hear you"',
        "refers to another answer ('see above')",
        "blank",
        "Not relevant (asks about parking)",  # a reviewer's own words: kept as written
    ]
    for index, reason in enumerate(reasons):
        rid = f"r{index:03d}"
        store.add_proposal(
            response_id=rid,
            backend="local",
            model="m",
            proposal=Proposal(response_id=rid, relevant=False, relevance_reason=reason),
            codebook_version=1,
        )
    summary = build_report(store).summary
    store.close()
    assert summary.excluded_reasons == [
        ("non-answer", 2),
        ("off-topic", 2),
        ("Not relevant (asks about parking)", 1),
        ("blank", 1),
        ("refers to another answer", 1),
    ]
