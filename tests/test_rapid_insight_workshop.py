"""The rapid-insight workshop end to end, as an organiser runs it the same week.

A Microsoft Forms export (XLSX, 40 respondents, the nine hypotheses and Q10, written here)
-> import -> precode -> a simulated review of 20 answers -> train -> report, all through the
CLI on real files, with the offline embedded default. Asserts the properties a publishable
report needs: no stance class lost by training, no duplicate or stance-only quotes, quotes
attributed by role and organisation, not-relevant answers excluded and counted, people
counted beside responses, and no stance split for Q10.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from click.testing import CliRunner
from openpyxl import Workbook

from coder.cli import cli
from coder.codebook import builtin_codebook_path, load_codebook
from coder.report.quotes import normalise
from coder.store import Store
from schemas import Labels

ROLES = [
    ("Programme Manager", "Health Innovation Wessex"),
    ("GP Partner", "Riverside Primary Care Network"),
    ("Head of Transformation", "Dorset ICB"),
    ("Patient Representative", "Healthwatch Somerset"),
    ("Chief Nursing Information Officer", "North Bristol NHS Trust"),
    ("Commercial Director", "MedTech Start-up Ltd"),
    ("Research Fellow", "University of Exeter"),
    ("Public Health Consultant", "Cornwall Council"),
]

# Per hypothesis: substantive answers (the theme's own words), used round-robin.
SUBSTANTIVE = {
    "H1": [
        "Yes - pilots in one clinic never survive; the whole pathway has to be redesigned with GPs and community teams.",
        "Partly. A pathway approach is right but budgets sit with single providers, so savings move elsewhere.",
        "Not really - some innovations are point solutions and do not need the whole pathway redesigned.",
    ],
    "H2": [
        "National policy levers help only when they fit local needs; too prescriptive and ICBs tick boxes.",
        "Yes, but national strategy changes every year so local teams stop listening to it.",
        "No. Policy is rarely the blocker for us; local capacity is.",
    ],
    "H3": [
        "If it does not fit the clinician's workflow and save them time, nobody will use it however good it is.",
        "Partly - perceived utility matters but culture and simplicity of use matter more on a busy ward.",
        "Disagree, the relative advantage is usually obvious; the workflow redesign is what stalls.",
    ],
    "H4": [
        "A respected local clinical leader who champions it makes all the difference to engaging colleagues.",
        "Yes but leadership without protected time for clinical champions just burns people out.",
        "Not convinced clinical leadership is essential; practitioners and managers drive most change here.",
    ],
    "H5": [
        "Timely uptake data by practice would let us see where adoption stalls and ask why.",
        "Partly - the qualitative information on barriers is more useful than the uptake dashboards.",
        "No, we drown in data already; more dashboards will not change behaviour.",
    ],
    "H6": [
        "The business case has to show cash-releasing savings or the finance committee will not fund it.",
        "Yes, but participative decision making slows everything when the business case is clear.",
        "Doesn't resonate. Cost savings are rarely cash-releasing, so decisions stall regardless.",
    ],
    "H7": [
        "Boards want real-world evidence of efficacy and return on investment from a similar system.",
        "Partly. Evidence matters but the burden of generating it falls on small companies.",
        "Not really - how much evidence is enough is never defined, so the bar keeps moving.",
    ],
    "H8": [
        "The informal networks of people who know each other get more done than the formal structures.",
        "Yes, and staff need protected time and improvement skills to take part in those networks.",
        "No - informal networks exclude people who are new or not already connected.",
    ],
    "H9": [
        "Adoption is iterative: we learn and revisit our assumptions as we go, not a linear roll-out.",
        "Partly - moving an innovation into business as usual with clear ownership is the hard part.",
        "Not really, the process framing is too abstract to act on in a system under pressure.",
    ],
    "Q10": [
        "Stable recurrent funding is missing: one-year pots make adoption impossible to plan.",
        "Patient and community voice needs its own hypothesis, co-designed with people with lived experience.",
        "Health inequalities and digital exclusion should be explicit in every hypothesis.",
        "Procurement is missing: it takes longer to buy an innovation than to prove it works.",
    ],
}
STANCE_ONLY = ["Yes", "Strongly resonates", "No", "Not really", "Agree"]
OFF_TOPIC = ["Can we get the slides?", "see previous answer", "n/a", "The room was too cold"]


def _write_forms_export(path: Path, respondents: int = 40) -> None:
    """A workbook in the shape Microsoft Forms exports (one column per question)."""
    codebook = load_codebook(builtin_codebook_path())
    rng = random.Random(7)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    questions = codebook.questions
    sheet.append(
        ["ID", "Start time", "Completion time", "Email", "Name", "What is your role?",
         "Which organisation do you work for?"]
        + [" ".join(q.text.split()) for q in questions]
    )
    for number in range(1, respondents + 1):
        role, organisation = ROLES[number % len(ROLES)]
        row: list[object] = [number, "12/11/2023 10:01", "12/11/2023 10:20", "anonymous", "",
                             role, organisation]
        for position, question in enumerate(questions):
            draw = rng.random()
            if draw < 0.12:
                cell = "" if rng.random() < 0.5 else rng.choice(OFF_TOPIC)
            elif draw < 0.30 and question.id != "Q10":
                cell = rng.choice(STANCE_ONLY)
            else:
                options = SUBSTANTIVE[question.id]
                cell = options[(number + position) % len(options)]
            row.append(cell)
        sheet.append(row)
    book.save(path)


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _stance_counts(store: Store) -> dict[str, int]:
    counts: dict[str, int] = {}
    reviewed = store.reviewed_response_ids()
    for response_id, stored in store.current_proposals().items():
        proposal = stored.proposal
        if response_id in reviewed or proposal is None or not proposal.relevant:
            continue
        if proposal.stance:
            counts[proposal.stance] = counts.get(proposal.stance, 0) + 1
    return counts


def test_forms_workshop_from_export_to_published_report(tmp_path: Path) -> None:
    export, db = tmp_path / "forms.xlsx", tmp_path / "workshop.db"
    _write_forms_export(export)
    _run("codebook", "add", "--example", "--db", str(db))
    imported = _run("import", str(export), "--db", str(db))
    assert "role" in imported and "organisation" in imported
    _run("precode", "--db", str(db))

    with Store(db) as store:
        before = _stance_counts(store)
        assert before.get("does_not_resonate", 0) > 0 and before.get("partly", 0) > 0
        proposals = store.current_proposals()
        responses = {r.id: r for r in store.responses()}
        # No bare stance answer got a theme; off-topic answers were excluded.
        for response_id, stored in proposals.items():
            proposal, text = stored.proposal, responses[response_id].text
            assert proposal is not None
            if text in STANCE_ONLY:
                assert proposal.relevant and proposal.theme_codes == [], text
            if text in OFF_TOPIC:
                assert not proposal.relevant, text
            if responses[response_id].question == "Q10":
                assert proposal.stance is None
        # A reviewer skewed towards "partly" (the 5-review case, four times over).
        reviewed = [
            rid for rid, stored in proposals.items()
            if stored.proposal is not None and stored.proposal.relevant
            and responses[rid].question != "Q10"
        ][:20]
        for position, response_id in enumerate(reviewed):
            proposal = proposals[response_id].proposal
            assert proposal is not None
            labels = Labels.from_proposal(proposal).model_copy(
                update={"stance": "partly" if position % 5 else "resonates"}
            )
            store.add_decision(
                response_id=response_id, reviewer="ann", action="correct", labels=labels,
                proposal_id=proposals[response_id].id,
            )

    trained = _run("train", "--db", str(db))
    assert "proposed by" in trained and "before" in trained
    with Store(db) as store:
        after = _stance_counts(store)
    # Training on a skewed handful never wipes out a stance class the answers express.
    for value, count in before.items():
        if count >= 3:
            assert after.get(value, 0) > 0, (value, before, after)

    out = tmp_path / "report"
    _run("report", "--out", str(out), "--db", str(db))
    markdown = (out / "report.md").read_text(encoding="utf-8")
    sections = [part.split("\n## ", 1)[0] for part in markdown.split("### Quotes")[1:]]
    quote_text = "\n".join(sections)
    quotes = re.findall(r"^> (?!—)(.+)$", quote_text, flags=re.MULTILINE)
    attributions = re.findall(r"^> — (.+)$", quote_text, flags=re.MULTILINE)
    assert len(sections) == 10 and quotes and len(attributions) == len(quotes)
    normalised = [normalise(q) for q in quotes]
    assert len(set(normalised)) == len(normalised), "duplicate quotes"
    assert not any(q.strip().rstrip(".!") in STANCE_ONLY for q in quotes)
    # Attributed by role and organisation, as the Forms columns give them.
    for attribution in attributions:
        assert any(f"{role}, {org}" in attribution for role, org in ROLES), attribution
    assert re.search(r"\d+ responses from 40 people, \d+ excluded as not relevant", markdown)
    assert "Responses and people by organisation" in markdown
    q10 = markdown.split("## Q10: Missing hypotheses", 1)[1].split("\n## ", 1)[0]
    assert "Does it resonate" not in q10 and "| Stance |" not in q10
    assert "Does it resonate" in markdown.split("## H1: Pathways", 1)[1]
