"""The report on a Forms-shaped rapid-insight project (issue 13): quotes, attribution,
people vs responses, organisation breakdowns, questions without a stance, the parent rule."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from coder.cli import cli
from coder.embedded.features import stance_only
from coder.report import build_report, write_report
from coder.report.html import render_html
from coder.report.markdown import render_markdown
from coder.report.model import (
    AttributionFields,
    UnknownAttributionField,
    attribution_for,
)
from coder.report.quotes import content_words, is_duplicate, normalise, quotable
from coder.report.rows import export_rows
from coder.report.xlsx import write_report_xlsx
from coder.store import Store
from schemas import Labels, Response
from tests.report_project import DATA_SENTENCE, build_rapid_insight_project


@pytest.fixture
def rapid(tmp_path: Path) -> Iterator[Store]:
    store = build_rapid_insight_project(tmp_path / "rapid.db")
    yield store
    store.close()


def _question(store: Store, question_id: str, **options: object):  # type: ignore[no-untyped-def]
    report = build_report(store, **options)  # type: ignore[arg-type]
    return next(q for q in report.questions if q.question_id == question_id)


# --- quotes -----------------------------------------------------------------------------------
def test_quotes_are_not_duplicated_even_near_or_contained(rapid: Store) -> None:
    quotes = _question(rapid, "H1", max_quotes=10).quotes
    texts = [normalise(q.text) for q in quotes]
    for index, text in enumerate(texts):
        assert not is_duplicate(text, texts[:index] + texts[index + 1 :]), quotes[index].text
    # Of the three copies of the data sentence, only the best (most confident) is quoted.
    assert [q.response_id for q in quotes].count("h1-p1a") == 1
    assert not {"h1-p2", "h1-p1c"} & {q.response_id for q in quotes}


def test_no_stance_only_or_near_empty_quote(rapid: Store) -> None:
    # The stance-only answers have the model's highest confidence: only the filter stops them.
    for question_id in ("H1", "Q10"):
        for quote in _question(rapid, question_id, max_quotes=10).quotes:
            assert not stance_only(quote.text), quote.text
            assert content_words(quote.text) >= 5, quote.text
    assert not quotable("Strongly resonates") and not quotable("No")
    assert not quotable("Short staffed.") and quotable("Short staffed.", flagged=True)
    assert not quotable("Yes", flagged=True)


def test_quotes_spread_across_people_before_repeating_one(rapid: Store) -> None:
    three = [q.response_id for q in _question(rapid, "H1").quotes]
    # p1 has the two most confident answers, but is quoted once while others are left.
    assert three == ["h1-p1a", "h1-anon1", "h1-p7"]
    five = [q.response_id for q in _question(rapid, "H1", max_quotes=5).quotes]
    assert five == ["h1-p1a", "h1-anon1", "h1-p7", "h1-p1b"]  # nothing else is left


def test_quotes_prefer_a_new_role_and_organisation(rapid: Store) -> None:
    # Another Programme Manager at the same organisation, more confident than the others:
    # still quoted after people from elsewhere.
    rapid.add_responses(
        [
            Response(
                id="h1-p8",
                respondent="p8",
                question="H1",
                text="Pathway boards with every partner at the table made our scale-up stick.",
                attributes={
                    "role": "Programme Manager",
                    "organisation": "Health Innovation Wessex",
                },
            )
        ]
    )
    rapid.add_decision(
        response_id="h1-p8",
        reviewer="alice",
        action="accept",
        labels=Labels(question="H1", stance="resonates", themes=["data"]),
    )
    ids = [q.response_id for q in _question(rapid, "H1", max_quotes=4).quotes]
    assert ids[0] == "h1-p8"  # human-reviewed first
    assert ids.index("h1-p1a") > ids.index("h1-anon1")


def test_flagged_quotes_win_and_are_deduplicated(rapid: Store) -> None:
    for response_id in ("h1-p2", "h1-p1a", "h1-p3", "h1-p1c"):
        rapid.add_decision(
            response_id=response_id,
            reviewer="bob",
            action="flag_quote",
            labels=Labels(question="H1", stance="resonates", themes=["data_sharing"], quote=True),
        )
    question = _question(rapid, "H1")
    assert question.quotes_flagged
    # One copy of the sentence; "Strongly resonates" is never a quote, flagged or not.
    assert len(question.quotes) == 1
    assert normalise(question.quotes[0].text) == normalise(DATA_SENTENCE)
    assert all(quote.flagged for quote in question.quotes)


def test_the_same_sentence_under_several_themes_is_quoted_once(rapid: Store) -> None:
    rapid.add_decision(
        response_id="h1-p1a",
        reviewer="alice",
        action="correct",
        labels=Labels(
            question="H1", stance="resonates", themes=["data_sharing", "workforce", "funding"]
        ),
    )
    quotes = _question(rapid, "H1", max_quotes=10).quotes
    assert sum(normalise(q.text) == normalise(DATA_SENTENCE) for q in quotes) == 1


# --- attribution --------------------------------------------------------------------------------
def test_quotes_are_attributed_by_role_and_organisation(rapid: Store) -> None:
    quotes = {q.response_id: q.attribution for q in _question(rapid, "H1").quotes}
    assert quotes["h1-p1a"] == "Programme Manager, Health Innovation Wessex"
    assert quotes["h1-anon1"] == "Some ICB"  # organisation only
    assert quotes["h1-p7"] == "Commissioner"  # role only
    q10 = {q.response_id: q.attribution for q in _question(rapid, "Q10").quotes}
    assert q10["q10-p3"] == "Clinical Lead, North Trust"
    fields = AttributionFields(
        role="role", organisation="organisation", organisation_type="organisation_type"
    )
    nobody = Response(id="x", text="t", attributes={"locality": "#BNSSG"})
    assert attribution_for(nobody, fields) == "Respondent"
    # The organisation type stands in for a missing organisation.
    gp = Response(
        id="y", text="t", attributes={"role": "GP Partner", "organisation_type": "Primary care"}
    )
    assert attribution_for(gp, fields) == "GP Partner, Primary care"
    # Older projects: 'stakeholder' as the role, 'organization' spelt the US way.
    older = Response(
        id="z", text="t", attributes={"stakeholder": "Innovator", "organization": "AppCo"}
    )
    assert attribution_for(older) == "Innovator, AppCo"


def test_attribution_field_replaces_the_role(rapid: Store) -> None:
    quotes = _question(rapid, "H1", attribution_field="organisation_type").quotes
    assert quotes[0].attribution == "Health innovation network, Health Innovation Wessex"


def test_unknown_attribution_field_is_an_error_listing_the_fields(rapid: Store) -> None:
    with pytest.raises(UnknownAttributionField) as caught:
        build_report(rapid, attribution_field="rol")
    message = str(caught.value)
    assert "'rol'" in message and "Did you mean 'role'?" in message
    assert "organisation, organisation_type, role" in message


def test_unknown_attribution_field_from_the_cli(rapid: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["report", "--db", str(rapid.path), "--out", str(out), "--attribution-field", "rol"],
    )
    assert result.exit_code == 1
    assert "organisation_type" in result.output and "Traceback" not in result.output
    assert not out.exists()  # nothing half-written


# --- people vs responses, organisations ---------------------------------------------------------
def test_people_are_counted_beside_responses(rapid: Store) -> None:
    report = build_report(rapid)
    summary = report.summary
    # p1..p7 plus two rows without a respondent id (one person each).
    assert (summary.responses_received, summary.respondents) == (15, 9)
    assert summary.sentence == "15 responses from 9 people, 2 excluded as not relevant."
    assert summary.people_note is not None and summary.people_note.startswith("2 response(s)")
    h1 = next(q for q in report.questions if q.question_id == "H1")
    assert (h1.responses, h1.people, h1.excluded) == (11, 9, 1)
    roles = {b.kind: {r.value: (r.responses, r.people) for r in b.rows} for b in summary.breakdowns}
    assert roles["role"]["Programme Manager"] == (5, 2)  # p1 three times on H1 and once on Q10, p2
    assert roles["role"]["not stated"] == (3, 3)


def test_breakdown_by_organisation_and_type_in_every_format(rapid: Store, tmp_path: Path) -> None:
    report = build_report(rapid)
    kinds = [b.kind for b in report.summary.breakdowns]
    assert kinds == ["role", "organisation type", "organisation"]
    organisation = report.summary.breakdowns[2]
    rows = {r.value: (r.responses, r.people) for r in organisation.rows}
    assert rows["Health Innovation Wessex"] == (5, 2)
    assert rows["North Trust"] == (2, 1)
    types = {r.value: r.people for r in report.summary.breakdowns[1].rows}
    assert types["Health innovation network"] == 2 and types["Primary care"] == 1

    markdown = render_markdown(report)
    assert "### Responses and people by organisation\n" in markdown
    assert "| Health Innovation Wessex | 5 | 2 |" in markdown
    assert "### Responses and people by organisation type" in markdown
    assert "15 responses from 9 people, 2 excluded as not relevant." in markdown
    html = render_html(report, with_charts=False)
    assert "Responses and people by organisation</h3>" in html
    assert '<td>Health Innovation Wessex</td><td class="num">5</td><td class="num">2</td>' in html
    path = tmp_path / "r.xlsx"
    write_report_xlsx(report, export_rows(rapid), path)
    summary_rows = [list(row) for row in load_workbook(path)["Summary"].iter_rows(values_only=True)]
    assert ["Organisation", "Responses", "People"] == summary_rows[
        _row(summary_rows, "Organisation")
    ][:3]
    assert ["Health Innovation Wessex", 5, 2] in [row[:3] for row in summary_rows]
    assert ["Organisation type", "Responses", "People"] in [row[:3] for row in summary_rows]


def _row(rows: list[list[object]], first: str) -> int:
    return next(i for i, row in enumerate(rows) if row and row[0] == first)


# --- questions without a stance (Q10) -----------------------------------------------------------
def test_question_without_stance_shows_no_split(rapid: Store, tmp_path: Path) -> None:
    report = build_report(rapid)
    q10 = next(q for q in report.questions if q.question_id == "Q10")
    assert not q10.has_stance and q10.stance == [] and q10.resonance == ""
    assert q10.themes and q10.quotes  # themes and quotes still shown
    assert (q10.responses, q10.relevant, q10.excluded) == (4, 3, 1)

    markdown = render_markdown(report)
    section = markdown.split("## Q10: Missing")[1]
    assert "Does it resonate?" not in section and "| Stance |" not in section
    assert "Digital inclusion" in section and "Workforce capacity" in section
    h1_section = markdown.split("## H1: Pathways")[1].split("## Q10")[0]
    assert "Does it resonate?" in h1_section and "| Stance |" in h1_section

    html = render_html(report)
    h1_html, q10_html = html.split('id="q-1"')[1].split('id="q-2"')
    assert 'alt="Stance split' in h1_html and 'alt="Stance split' not in q10_html
    assert "Does it resonate?" not in q10_html and 'alt="Theme counts' in q10_html

    path = tmp_path / "r.xlsx"
    write_report_xlsx(report, export_rows(rapid), path)
    workbook = load_workbook(path)
    q10_cells = [c for row in workbook["Q10 Missing"].iter_rows(values_only=True) for c in row if c]
    assert "Stance" not in q10_cells and not any("resonate" in str(c) for c in q10_cells)
    assert "Theme" in q10_cells
    h1_cells = [c for row in workbook["H1 Pathways"].iter_rows(values_only=True) for c in row if c]
    assert "Stance" in h1_cells


# --- the parent rule ------------------------------------------------------------------------------
def _themes(store: Store) -> dict[str, int]:
    h1 = _question(store, "H1")
    found = {}
    stack = list(h1.themes)
    while stack:
        node = stack.pop()
        found[node.theme_id] = node.n
        stack.extend(node.children)
    return found


def test_parent_counts_as_coded_by_default(rapid: Store) -> None:
    counts = _themes(rapid)
    # data directly: "Agree" (h1-p5) and h1-p1b; data_sharing: the three copies and h1-p1b.
    assert counts["data"] == 2 and counts["data_sharing"] == 4


def test_parent_counts_each_response_once_when_sub_themes_imply_it(tmp_path: Path) -> None:
    store = build_rapid_insight_project(tmp_path / "implied.db", imply_parent=True)
    try:
        counts = _themes(store)
        # h1-p1b is coded with both data and data_sharing: counted once under data.
        assert counts["data"] == 5 and counts["data_sharing"] == 4
        guide = build_report(store).mind_map_guide
        assert "counts each response once" in guide
    finally:
        store.close()


# --- safety -------------------------------------------------------------------------------------
def test_markdown_quotes_cannot_inject_html_or_headings(rapid: Store) -> None:
    rapid.add_responses(
        [
            Response(
                id="evil",
                respondent="p9",
                question="H1",
                text="<img src=x onerror=alert(1)> pathways need funding\n# Fake heading here\n1. listed",
                attributes={"role": "<b>Boss</b>", "organisation": "## Org"},
            )
        ]
    )
    rapid.add_decision(
        response_id="evil",
        reviewer="alice",
        action="correct",
        labels=Labels(question="H1", stance="resonates", themes=["funding"], quote=True),
    )
    markdown = render_markdown(build_report(rapid))
    assert "<img" not in markdown and "<b>" not in markdown
    assert "&lt;img src=x onerror=alert(1)&gt;" in markdown
    assert not re.search(r"^(> )?#+ Fake", markdown, re.MULTILINE)
    assert "> \\# Fake heading here" in markdown and "> 1\\. listed" in markdown
    assert "— &lt;b&gt;Boss&lt;/b&gt;, ## Org" in markdown


def test_xlsx_text_never_becomes_a_formula(rapid: Store, tmp_path: Path) -> None:
    text = '=HYPERLINK("http://example.com","pathway funding is the real problem here")'
    rapid.add_responses([Response(id="f1", respondent="p9", question="H1", text=text)])
    rapid.add_decision(
        response_id="f1",
        reviewer="alice",
        action="correct",
        labels=Labels(question="H1", stance="resonates", themes=["funding"], quote=True),
    )
    _, paths = write_report(rapid, tmp_path / "out", ["xlsx"])
    workbook = load_workbook(paths[0])
    cells = [
        cell
        for sheet in workbook.worksheets
        for row in sheet.iter_rows()
        for cell in row
        if cell.value == text
    ]
    assert {cell.parent.title for cell in cells} >= {"H1 Pathways", "Coded responses"}
    assert all(cell.data_type == "s" for cell in cells)
    assert not list((tmp_path / "out").glob(".*.tmp"))  # the atomic write left no temp file
