"""A small, fixed coding project for the report, export and REFI-QDA tests.

Two hypotheses, a theme with sub-themes, eleven responses: some reviewed (accepted, corrected,
flagged as quotes, excluded as not relevant), some only proposed by the model, one not coded.
Timestamps come from a counter (see :func:`fixed_clock`) so golden files never hold real times.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from coder.store import Store
from schemas import (
    Codebook,
    Labels,
    Proposal,
    Question,
    Response,
    SuggestedTheme,
    Theme,
    ThemeAssignment,
)

GOLDEN = Path(__file__).parent / "golden"

CODEBOOK = Codebook(
    name="Innovation ecosystem (test)",
    description="A two-hypothesis excerpt of the seed's codebook.",
    questions=[
        Question(
            id="H1",
            short_name="Pathways",
            text="Taking a whole pathway approach is more likely to lead to sustained adoption.",
        ),
        Question(
            id="H2",
            short_name="Policy levers",
            text="Spread is harder without national policy levers that align with local needs.",
        ),
    ],
    themes=[
        Theme(
            id="patient_benefit",
            label="Patient benefit",
            definition="Benefits to patients and carers.",
            questions=["H1"],
        ),
        Theme(
            id="system_working",
            label="System working",
            definition="Working across organisations in the system.",
        ),
        Theme(
            id="primary_secondary",
            label="Primary and secondary care",
            definition="Joining up primary and secondary care.",
            parent="system_working",
        ),
        Theme(
            id="funding",
            label="Funding",
            definition="Money, budgets and business cases.",
        ),
        Theme(
            id="local_needs",
            label="Local needs & communities",
            definition='Reflecting local "diverse" communities.',
            questions=["H2"],
        ),
    ],
)

ROLE_HIN = "Representative from a health innovation network"

RESPONSES = [
    Response(
        id="r01",
        question="H1",
        respondent="p1",
        tags=["NHSSomerset"],
        text="Yes - looking at the whole pathway shows the patient benefit, not just one step.",
        attributes={"role": ROLE_HIN, "organisation": "HI Wessex"},
    ),
    Response(
        id="r02",
        question="H1",
        respondent="p2",
        tags=["NHSSomerset"],
        text="Given the way the system works, joining funding up between primary and "
        "secondary care is the only way to do it.",
        attributes={"role": "Innovator", "organisation": "MedTech Ltd"},
    ),
    Response(
        id="r03",
        question="H1",
        respondent="p3",
        tags=["BNSSG"],
        text="Partly. Pathways matter but the funding follows organisations, not pathways.",
        attributes={"role": "NHS organisation", "organisation": "North Trust"},
    ),
    Response(
        id="r04",
        question="H1",
        respondent="p4",
        tags=[],
        text="n/a",
        attributes={"role": "NHS organisation", "organisation": "North Trust"},
    ),
    Response(
        id="r05",
        question="H1",
        respondent="p5",
        tags=["BNSSG"],
        text="System partners working together across the pathway makes it stick.",
        attributes={"role": ROLE_HIN, "organisation": "HI South West"},
    ),
    Response(
        id="r06",
        question="H1",
        respondent="p6",
        tags=[],
        text="We tried it; nobody owned the pathway so it stalled.",
        attributes={"role": "Innovator", "organisation": "AppCo"},
    ),
    Response(
        id="r07",
        question="H2",
        respondent="p1",
        tags=["NHSSomerset"],
        text="This resonates, but the needs of our diverse communities must be heard. "
        "HEAL-D is an example.",
        attributes={"role": ROLE_HIN, "organisation": "HI Wessex"},
    ),
    Response(
        id="r08",
        question="H2",
        respondent="p2",
        tags=[],
        text="National policy is too prescriptive | local teams need room.",
        attributes={"role": "Innovator", "organisation": "MedTech Ltd"},
    ),
    Response(
        id="r09",
        question="H2",
        respondent="p3",
        tags=["BNSSG"],
        text="Did not attend this part of the session.",
        attributes={"role": "NHS organisation", "organisation": "North Trust"},
    ),
    Response(
        id="r10",
        question="H2",
        respondent="p5",
        tags=["BNSSG"],
        text="Levers without funding do nothing.",
        attributes={"role": ROLE_HIN, "organisation": "HI South West"},
    ),
    Response(
        id="r11",
        question="H2",
        respondent="p6",
        tags=[],
        text="Not sure yet.",
        attributes={"role": "Innovator", "organisation": "AppCo"},
    ),
]


def _proposal(
    response_id: str,
    question: str,
    stance: str | None,
    themes: list[tuple[str, str | None, float]],
    confidence: float,
    relevant: bool = True,
    reason: str | None = None,
    suggested: list[str] | None = None,
) -> Proposal:
    return Proposal(
        response_id=response_id,
        question=question,
        stance=stance,
        relevant=relevant,
        relevance_reason=reason,
        themes=[ThemeAssignment(code=c, evidence=e, confidence=k) for c, e, k in themes],
        suggested_themes=[SuggestedTheme(label=label) for label in (suggested or [])],
        confidence=confidence,
    )


PROPOSALS = [
    _proposal(
        "r01", "H1", "resonates", [("patient_benefit", "shows the patient benefit", 0.9)], 0.9
    ),
    _proposal(
        "r02",
        "H1",
        "resonates",
        [
            ("primary_secondary", "primary and secondary care", 0.8),
            ("funding", "joining funding up", 0.7),
        ],
        0.8,
    ),
    _proposal("r03", "H1", "partly", [("funding", "the funding follows organisations", 0.6)], 0.6),
    _proposal("r04", "H1", None, [], 0.95, relevant=False, reason="no content"),
    _proposal(
        "r05", "H1", "resonates", [("system_working", "System partners working together", 0.7)], 0.7
    ),
    _proposal("r06", "H1", "does_not_resonate", [], 0.3, suggested=["Pathway ownership"]),
    _proposal("r07", "H2", "partly", [("local_needs", "diverse communities", 0.85)], 0.85),
    _proposal("r08", "H2", "partly", [("local_needs", None, 0.5)], 0.5),
    _proposal("r09", "H2", None, [], 0.9, relevant=False, reason="did not answer"),
    _proposal("r10", "H2", "does_not_resonate", [("funding", "without funding", 0.75)], 0.75),
    # r11 has no proposal: it counts as not yet coded.
]


def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every stored timestamp a predictable counter value."""
    counter = itertools.count(1)
    monkeypatch.setattr(
        "coder.store.now", lambda: f"2024-01-01T00:00:{next(counter):02d}.000000+00:00"
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """The fixed project, with a fixed clock, open in a temp dir."""
    fixed_clock(monkeypatch)
    store = build_project(tmp_path / "project.db")
    yield store
    store.close()


def build_project(path: Path) -> Store:
    """Write the fixed project to ``path`` and return the open store."""
    store = Store(path)
    version = store.save_codebook(CODEBOOK, source="test")
    store.add_responses(RESPONSES)
    ids = {}
    for proposal in PROPOSALS:
        ids[proposal.response_id] = store.add_proposal(
            response_id=proposal.response_id,
            backend="local",
            model="test-model",
            proposal=proposal,
            codebook_version=version,
        )
    by_id = {p.response_id: p for p in PROPOSALS}
    # Accepted as proposed.
    store.add_decision(
        response_id="r01",
        reviewer="alice",
        action="accept",
        labels=Labels.from_proposal(by_id["r01"]),
        proposal_id=ids["r01"],
    )
    # Corrected and flagged as quotes.
    labels = Labels.from_proposal(by_id["r02"])
    store.add_decision(
        response_id="r02",
        reviewer="alice",
        action="correct",
        labels=labels.model_copy(update={"quote": True}),
        proposal_id=ids["r02"],
    )
    store.add_decision(
        response_id="r07",
        reviewer="bob",
        action="flag_quote",
        labels=Labels.from_proposal(by_id["r07"]).model_copy(update={"quote": True}),
        proposal_id=ids["r07"],
    )
    # Excluded by a reviewer, with a note.
    store.add_decision(
        response_id="r04",
        reviewer="bob",
        action="accept",
        labels=Labels.from_proposal(by_id["r04"]),
        proposal_id=ids["r04"],
    )
    store.add_decision(response_id="r04", reviewer="bob", action="note", note="blank answer")
    # Corrected: the model missed the parent-less theme.
    store.add_decision(
        response_id="r03",
        reviewer="alice",
        action="correct",
        labels=Labels(question="H1", stance="partly", themes=["funding", "system_working"]),
        proposal_id=ids["r03"],
        reason_code="missed_theme",
    )
    # An accept that was undone: r05 stays model-only.
    undone = store.add_decision(
        response_id="r05",
        reviewer="bob",
        action="accept",
        labels=Labels.from_proposal(by_id["r05"]),
        proposal_id=ids["r05"],
    )
    store.add_decision(response_id="r05", reviewer="bob", action="undo", undoes=undone)
    return store


# --- a Forms-shaped rapid-insight project -------------------------------------------------
# One hypothesis with a stance (H1) and one "what is missing?" question without (Q10); role,
# organisation and organisation type as the Forms importer stores them; the things a real
# export holds: a respondent answering twice, the same sentence from two people, stance-only
# answers the model gave a theme to, a two-word answer, respondents with no attributes and
# rows with no respondent id.

RAPID_CODEBOOK = Codebook(
    name="Rapid insight (test)",
    questions=[
        Question(
            id="H1",
            short_name="Pathways",
            text="Taking a whole pathway approach is more likely to lead to sustained adoption.",
        ),
        Question(
            id="Q10",
            short_name="Missing",
            text="Are any hypotheses missing?",
            has_stance=False,
        ),
    ],
    themes=[
        Theme(id="data", label="Data and evidence", definition="Data, evidence and its quality."),
        Theme(
            id="data_sharing",
            label="Data sharing",
            definition="Sharing data between organisations.",
            parent="data",
        ),
        Theme(id="workforce", label="Workforce capacity", definition="Staff time and capacity."),
        Theme(id="funding", label="Funding", definition="Money, budgets and business cases."),
    ],
)

HIN = {
    "role": "Programme Manager",
    "organisation": "Health Innovation Wessex",
    "organisation_type": "Health innovation network",
}
TRUST = {"role": "Clinical Lead", "organisation": "North Trust", "organisation_type": "NHS trust"}
SME = {"role": "Chief Executive", "organisation": "MedTech Ltd", "organisation_type": "SME"}
PRACTICE = {"role": "GP Partner", "organisation_type": "Primary care"}

DATA_SENTENCE = "Yes - without shared data across the pathway nobody can see where patients drop out."

#: (id, respondent, question, text, attributes, themes, stance, confidence, relevant)
RAPID_ROWS: list[tuple[str, str | None, str, str, dict[str, str], list[str], str | None, float, bool]] = [
    ("h1-p1a", "p1", "H1", DATA_SENTENCE, HIN, ["data_sharing"], "resonates", 0.95, True),
    # The same sentence from a colleague (case and punctuation differ) ...
    (
        "h1-p2",
        "p2",
        "H1",
        "yes, without SHARED data across the pathway nobody can see where patients drop out!!",
        HIN,
        ["data_sharing"],
        "resonates",
        0.94,
        True,
    ),
    # ... and p1 submitting the form again with part of the same answer.
    (
        "h1-p1c",
        "p1",
        "H1",
        "Without shared data across the pathway nobody can see where patients drop out",
        HIN,
        ["data_sharing"],
        "resonates",
        0.93,
        True,
    ),
    # Stance-only answers, wrongly given themes with high confidence by the model.
    ("h1-p3", "p3", "H1", "Strongly resonates", TRUST, ["workforce"], "resonates", 0.99, True),
    ("h1-p4", "p4", "H1", "No", SME, ["funding"], "does_not_resonate", 0.99, True),
    ("h1-p5", "p5", "H1", "Agree", PRACTICE, ["data"], "resonates", 0.98, True),
    ("h1-p6", "p6", "H1", "Short staffed.", {}, ["workforce"], "partly", 0.97, True),
    (
        "h1-p7",
        "p7",
        "H1",
        "Commissioners fund single services, so whole pathway work never gets a budget line.",
        {"role": "Commissioner"},
        ["funding"],
        "partly",
        0.6,
        True,
    ),
    (
        "h1-anon1",
        None,
        "H1",
        "Our teams are too stretched to redesign a whole pathway while keeping services running.",
        {"organisation": "Some ICB"},
        ["workforce"],
        "partly",
        0.7,
        True,
    ),
    (
        "h1-p1b",
        "p1",
        "H1",
        "Data quality is poor in primary care and data sharing agreements take months to sign.",
        HIN,
        ["data_sharing", "data"],
        "resonates",
        0.92,
        True,
    ),
    ("h1-anon2", None, "H1", "n/a", {}, [], None, 0.99, False),
    (
        "q10-p1",
        "p1",
        "Q10",
        "Digital inclusion: patients without smartphones get left behind by remote monitoring.",
        HIN,
        ["data"],
        None,
        0.8,
        True,
    ),
    (
        "q10-p3",
        "p3",
        "Q10",
        "How to keep clinical champions once the pilot money ends and they go back to rota.",
        TRUST,
        ["workforce", "funding"],
        None,
        0.75,
        True,
    ),
    (
        "q10-p4",
        "p4",
        "Q10",
        "Procurement rules for small companies deserve a hypothesis of their own, honestly.",
        SME,
        ["funding"],
        None,
        0.7,
        True,
    ),
    ("q10-p5", "p5", "Q10", "No", PRACTICE, [], None, 0.9, False),
]


def build_rapid_insight_project(path: Path, *, imply_parent: bool = False) -> Store:
    """Write the Forms-shaped project to ``path`` (model proposals only) and return the store.

    ``imply_parent`` sets the codebook's ``sub_themes_imply_parent`` rule.
    """
    store = Store(path)
    codebook = RAPID_CODEBOOK.model_copy(update={"sub_themes_imply_parent": imply_parent})
    version = store.save_codebook(codebook, source="test")
    store.add_responses(
        Response(id=rid, respondent=person, question=question, text=text, attributes=attributes)
        for rid, person, question, text, attributes, *_ in RAPID_ROWS
    )
    for rid, _, question, _, _, themes, stance, confidence, relevant in RAPID_ROWS:
        store.add_proposal(
            response_id=rid,
            backend="local",
            model="test-model",
            proposal=_proposal(
                rid,
                question,
                stance,
                [(code, None, confidence) for code in themes],
                confidence,
                relevant=relevant,
                reason=None if relevant else "no content",
            ),
            codebook_version=version,
        )
    return store
