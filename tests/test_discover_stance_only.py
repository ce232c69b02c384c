"""`coder discover` on rapid-insight answers: "Yes" and "Strongly resonates" are not themes."""

from __future__ import annotations

from pathlib import Path

import pytest

from coder import discover as discovery
from coder.embedded.features import stance_only
from coder.report.model import collect_coded
from coder.store import Store
from schemas import Codebook, Proposal, Question, Response, Theme, ThemeAssignment

STANCE_ANSWERS = [
    "Yes",
    "Yes yes",
    "yes!",
    "Strongly resonates",
    "Resonates strongly",
    "Agree",
    "Agree 100%",
    "Strongly agree",
    "Absolutely, resonates",
    "No",
    "Not really",
    "Definitely yes",
    "Totally agree",
    "Yes, strongly agree",
]
DATA = [
    "Yes, strongly agree: shared care records would let every partner see the same data.",
    "Resonates - data sharing agreements between trusts and practices take months.",
    "Agree, the data we need sits in systems that cannot talk to each other.",
    "Information governance stops us sharing patient data across the pathway.",
]
WORKFORCE = [
    "Strongly resonates. Staff have no protected time to take on a new innovation.",
    "Yes - clinicians are too stretched on rota to learn another new system.",
    "Workforce shortages mean nobody has capacity to champion adoption.",
    "Agree: we lose our clinical champions when their secondments end and staff move on.",
]
NOT_RELEVANT = [
    "I did not attend the session where this hypothesis was discussed today.",
    "Did not attend this part of the workshop so cannot comment on it at all.",
]


def build(path: Path) -> Store:
    store = Store(path)
    codebook = Codebook(
        name="Rapid insight",
        questions=[Question(id="H1", text="Taking a whole pathway approach helps adoption.")],
        themes=[Theme(id="funding", label="Funding", definition="Money and budgets.")],
    )
    version = store.save_codebook(codebook)
    rows = (
        [(text, True) for text in STANCE_ANSWERS + DATA + WORKFORCE]
        + [(text, False) for text in NOT_RELEVANT]
        + [("Funding follows organisations, not pathways.", True)]
    )
    store.add_responses(
        Response(id=f"r{i:02d}", respondent=f"p{i}", text=text, question="H1")
        for i, (text, _) in enumerate(rows)
    )
    for i, (text, relevant) in enumerate(rows):
        covered = text.startswith("Funding")
        store.add_proposal(
            response_id=f"r{i:02d}",
            backend="local",
            model="m",
            proposal=Proposal(
                response_id=f"r{i:02d}",
                question="H1",
                stance="resonates" if relevant else None,
                relevant=relevant,
                themes=[ThemeAssignment(code="funding")] if covered else [],
                confidence=0.9 if covered else 0.3,
            ),
            codebook_version=version,
        )
    return store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return build(tmp_path / "stance.db")


def _ids(store: Store, texts: list[str]) -> set[str]:
    return {r.id for r in store.responses() if r.text in texts}


def test_stance_only_empty_and_not_relevant_answers_are_not_selected(store: Store) -> None:
    selected = {c.response.text for c in discovery.select_uncovered(collect_coded(store))}
    assert selected == set(DATA + WORKFORCE)
    assert not discovery.has_theme_content("n/a") and not discovery.has_theme_content("?!")
    assert not discovery.has_theme_content("#NHSDorset")
    assert discovery.has_theme_content("Staff time.")


def test_characteristic_terms_leave_out_stance_words() -> None:
    terms = discovery.characteristic_terms([DATA, WORKFORCE], top=6)
    for cluster_terms in terms:
        assert cluster_terms
        for term in cluster_terms:
            assert not any(stance_only(word) for word in term.split()), term
    assert any("data" in term for term in terms[0])


def test_no_candidate_is_made_of_stance_words(store: Store) -> None:
    found = discovery.discover(store)
    assert found, "the themed answers should form candidates"
    stance_ids = _ids(store, STANCE_ANSWERS) | _ids(store, NOT_RELEVANT)
    for candidate in found:
        assert not stance_only(candidate.label), candidate.label
        assert not any(stance_only(word) for word in candidate.label.replace("/", " ").split())
        assert not set(candidate.response_ids) & stance_ids
        assert not any(stance_only(example) for example in candidate.examples)
    members = {rid for c in found for rid in c.response_ids}
    assert members <= _ids(store, DATA + WORKFORCE)
