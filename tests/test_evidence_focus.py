"""Evidence a reviewer can check at a glance: the clause that carries a theme, not the answer."""

from __future__ import annotations

from coder.embedded.classifier import LocalClassifier
from coder.embedded.features import LONG_SENTENCE_WORDS, clause_spans
from schemas import Codebook, Question, Response, Theme


def test_short_sentences_are_never_cut() -> None:
    assert clause_spans("Yes - the money has to follow the patient.") == []


def test_list_commas_do_not_split_a_clause() -> None:
    sentence = (
        "We brought the GPs, community pharmacists, cardiology and the ambulance service in "
        "from day one of the work on the pathway"
    )
    assert len(sentence.split()) >= LONG_SENTENCE_WORDS
    assert clause_spans(sentence) == []


def test_clauses_are_substrings_and_cover_the_ideas() -> None:
    sentence = (
        "In my experience the national levers are the problem - the innovation we were "
        "spreading had no tariff, and the mandated programme that did have funding crowded it out."
    )
    clauses = [sentence[b:e] for b, e in clause_spans(sentence)]
    assert clauses == [
        "In my experience the national levers are the problem",
        "the innovation we were spreading had no tariff",
        "and the mandated programme that did have funding crowded it out.",
    ]


def codebook() -> Codebook:
    return Codebook(
        name="focus",
        questions=[Question(id="Q1", text="What helps new ideas spread across the NHS?")],
        themes=[
            Theme(
                id="funding",
                label="Funding and money",
                definition="Money, budgets, tariffs and funding for the innovation.",
                examples=["There was no budget to pay for it.", "The tariff does not cover it."],
            ),
            Theme(
                id="staff_time",
                label="Staff time and workload",
                definition="Staff have no time; workload and rota pressure stop new work.",
                examples=["Nurses are too busy to learn a new system."],
            ),
        ],
    )


def test_evidence_is_the_clause_that_carries_the_theme() -> None:
    text = (
        "Honestly the ward teams were far too busy to learn yet another new system on top of "
        "their shifts, but the bigger problem was that nobody had any budget to pay for the licences."
    )
    classifier = LocalClassifier()
    response = Response(id="r1", text=text, question="Q1")
    [result] = classifier.propose([response], codebook())
    evidence = {t.code: t.evidence for t in result.proposal.themes}
    assert evidence, "the answer raises at least one of the two themes"
    for quote in evidence.values():
        assert quote is not None and quote in text
        assert len(quote.split()) < len(text.split())
    if "funding" in evidence:
        assert "budget" in str(evidence["funding"])
        assert "busy" not in str(evidence["funding"])
