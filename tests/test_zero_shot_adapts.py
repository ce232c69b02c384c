"""The embedded default on a small workshop: zero-shot that adapts to the codebook, and
training that never makes a field worse than zero-shot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coder.codebook import builtin_codebook_path, load_codebook
from coder.embedded.classifier import LocalClassifier
from coder.embedded.features import non_answer_reason, stance_only
from coder.embedded.gate import choose_fields, theme_f1
from coder.embedded.retrain import retrain_and_repropose
from coder.embedded.training import LabelledExample
from coder.store import Store
from schemas import Codebook, Labels, Question, Response, Theme
from schemas.codebook import StanceScale, StanceValue

H = load_codebook(builtin_codebook_path())


def test_stance_only_answers_get_a_stance_and_no_theme() -> None:
    for text in ["Yes", "Strongly resonates", "No.", "Not really", "Agree 100%!", "Yes #NHSKent"]:
        assert stance_only(text), text
    for text in ["Yes, but funding is key", "No - procurement is the blocker", "Funding."]:
        assert not stance_only(text), text
    responses = [
        Response(id="y", text="Yes", question="H1"),
        Response(id="s", text="Strongly resonates", question="H4"),
        Response(id="n", text="Not really", question="H6"),
    ]
    by_id = {r.response_id: r.proposal for r in LocalClassifier().propose(responses, H)}
    assert by_id["y"] and by_id["y"].relevant and by_id["y"].themes == []
    assert by_id["y"].stance == "resonates"
    assert by_id["s"] and by_id["s"].stance == "resonates" and by_id["s"].themes == []
    assert by_id["n"] and by_id["n"].stance == "does_not_resonate" and by_id["n"].themes == []
    assert "only gives a stance" in by_id["n"].rationale


def test_cross_references_and_workshop_chatter_are_not_relevant() -> None:
    for text in ["see previous answer", "As above", "See my H3 answer", "N/A - not my area"]:
        assert non_answer_reason(text), text
    for text in ["As above I have no complaints.", "See the AHSN report: it shows pathway benefits"]:
        assert non_answer_reason(text) is None, text
    responses = [
        Response(id="cold", text="The room was too cold", question="H2"),
        Response(id="mic", text="My mic isn't working so typing here - can someone tell the host?", question="H4"),
        Response(id="ok", text="Local clinical leaders who champion it are essential.", question="H4"),
        Response(id="bare", text="Yes.", question="H5"),
    ]
    by_id = {r.response_id: r.proposal for r in LocalClassifier().propose(responses, H)}
    assert by_id["cold"] and not by_id["cold"].relevant
    assert by_id["mic"] and not by_id["mic"].relevant
    assert by_id["ok"] and by_id["ok"].relevant and "clinical_leadership" in by_id["ok"].theme_codes
    assert by_id["bare"] and by_id["bare"].relevant  # a bare stance is a relevant answer


def test_a_question_without_a_stance_gets_none() -> None:
    assert not H.has_stance("Q10") and H.has_stance("H1")
    responses = [
        Response(id="q10", text="Yes - stable funding is missing from all of these.", question="Q10"),
        Response(id="h1", text="Yes - stable funding is missing from this one.", question="H1"),
    ]
    by_id = {r.response_id: r.proposal for r in LocalClassifier().propose(responses, H)}
    assert by_id["q10"] and by_id["q10"].stance is None and by_id["q10"].stance_confidence is None
    assert by_id["h1"] and by_id["h1"].stance == "resonates"


def _two_topic_codebook(group_limited: bool) -> Codebook:
    """Two questions that each name one of two themes (or themes limited to one question)."""
    return Codebook(
        name="t",
        questions=[
            Question(id="P", text="Free car parking for staff and visitors would improve the hospital."),
            Question(id="F", text="Hot, fresh food on the wards would improve the hospital."),
        ],
        themes=[
            Theme(id="parking", label="Parking", definition="Car parking spaces and charges.",
                  questions=["P"] if group_limited else None),
            Theme(id="food", label="Food", definition="Meals and drinks for patients.",
                  questions=["F"] if group_limited else None),
            Theme(id="staff", label="Staff", definition="How kind and helpful staff were."),
            Theme(id="clean", label="Cleanliness", definition="How clean the wards and toilets were."),
            Theme(id="noise", label="Noise", definition="Noise at night and on the ward."),
            Theme(id="waiting", label="Waiting", definition="Waiting times for appointments."),
            Theme(id="signs", label="Signage", definition="Finding the way around the site."),
        ],
    )


def _answers() -> list[Response]:
    parking = ["Spaces are impossible to find after 9am.", "Charges of 4 pounds an hour are too much.",
               "I circled the car park for 30 minutes.", "Blue badge bays are always full.",
               "The multi-storey is too far from outpatients.", "Staff pay for permits and still cannot park."]
    food = ["The soup was cold again.", "No vegetarian option at lunch.", "Sandwiches are stale by evening.",
            "My mother could not open the packaging.", "Tea came round only once a day.", "Meals were tasty."]
    return [Response(id=f"p{i}", text=t, question="P") for i, t in enumerate(parking)] + [
        Response(id=f"f{i}", text=t, question="F") for i, t in enumerate(food)
    ]


def test_question_prior_follows_questions_whose_answers_follow_their_text() -> None:
    classifier = LocalClassifier()
    weights = classifier.prepare(_answers(), _two_topic_codebook(False))
    assert weights["P"] > 0.3 and weights["F"] > 0.3
    # Too few answers to a question: no prior, whatever its text says.
    fresh = LocalClassifier(encoder=classifier.encoder)
    assert fresh.prepare(_answers()[:3], _two_topic_codebook(False)) == {"P": 0.0, "F": 0.0}
    # Every code limited to one question (as ArgKP's key points): nothing to compare, no prior.
    limited = LocalClassifier(encoder=classifier.encoder)
    base = _two_topic_codebook(True)
    codebook = base.model_copy(
        update={"themes": [t if t.questions else t.model_copy(update={"questions": ["P"]})
                           for t in base.themes]}
    )
    limited.prepare(_answers(), codebook)
    rows = limited._prior_rows(["x", "y"], ["P", "F"], codebook)
    assert np.allclose(rows, 0.0)


def test_question_prior_stays_off_when_answers_spread_over_many_codes() -> None:
    # Both questions name parking, but their answers are about everything: the question's
    # text says little about any one answer, so cross-cutting codes get no push.
    codebook = _two_topic_codebook(False)
    spread = [
        "Staff were kind and patient.", "The toilets were filthy.", "Too noisy to sleep at night.",
        "Waited four hours to be seen.", "Could not find the clinic, signs were confusing.",
        "The food was cold.", "Nurses were lovely.", "Wards were spotless.",
    ]
    responses = [Response(id=f"s{i}", text=t, question="P") for i, t in enumerate(spread)]
    classifier = LocalClassifier()
    weights = classifier.prepare(responses, codebook)
    assert weights["P"] < 0.2


def _examples(count: int) -> list[LabelledExample]:
    """A skewed handful of reviews: nearly all 'partly' (the issue's case)."""
    texts = [
        ("H1", "Partly. Budgets sit with single providers, so pathway savings move elsewhere."),
        ("H2", "Partly - national policy helps only if it fits local needs."),
        ("H3", "Partly. It has to fit the clinical workflow or nobody uses it."),
        ("H4", "Partly: local clinical champions matter but need protected time."),
        ("H5", "Yes - timely uptake data shows where adoption stalls."),
        ("H6", "Partly. The business case must show cash-releasing savings."),
        ("H7", "Partly - boards want real-world evidence of return on investment."),
        ("H8", "Partly. Informal networks get things done but exclude newcomers."),
    ]
    themes = {"H1": "pathway_approach", "H2": "policy_levers", "H3": "utility_workflow_fit",
              "H4": "clinical_leadership", "H5": "uptake_data", "H6": "business_case_decision_making",
              "H7": "evidence_efficacy_roi", "H8": "informal_workforce_networks"}
    return [
        LabelledExample(text=t, question=q, themes=[themes[q]],
                        stance="resonates" if t.startswith("Yes") else "partly", id=f"e{i}")
        for i, (q, t) in enumerate(texts[:count])
    ]


def test_training_on_a_skewed_handful_keeps_zero_shot_where_it_is_not_beaten() -> None:
    classifier = LocalClassifier()
    state = classifier.fit(_examples(5), H)
    assert set(state.fields) == {"themes", "stance", "relevance"}
    assert state.fields["stance"] == "zero-shot"  # 4 x partly cannot beat the openings
    gate = state.metrics["gate"]
    assert gate["n_examples"] == 5 and "zero-shot" in gate["stance"]
    probe = [Response(id="n", text="Not really - some innovations are point solutions.", question="H1")]
    proposal = classifier.propose(probe, H)[0].proposal
    assert proposal is not None and proposal.stance == "does_not_resonate"


def test_gate_prefers_the_safer_option_on_a_tie() -> None:
    calls: list[int] = []

    def make() -> LocalClassifier:
        return LocalClassifier(encoder=shared.encoder)

    def fit(classifier: LocalClassifier, train: object) -> None:
        calls.append(1)
        classifier.fit(list(train), H, gate=False)  # type: ignore[call-overload]

    shared = LocalClassifier()
    fields, report = choose_fields(make, _examples(8), H, fit)
    assert calls and report["n_examples"] == 8
    for name, chosen in fields.items():
        scores = report[name]
        if chosen != "zero-shot":  # a trained option must beat zero-shot out of fold
            assert scores[chosen] > scores["zero-shot"]
    assert theme_f1(_examples(2), [None, None], H) == 0.0


def test_train_reports_fields_and_label_changes(tmp_path: Path) -> None:
    store = Store(tmp_path / "p.db")
    store.save_codebook(H)
    responses = [
        Response(id=f"r{i}", text=text, question=q)
        for i, (q, text) in enumerate(
            [("H1", "Not really - some innovations are point solutions."),
             ("H2", "No. Policy is rarely the blocker."),
             ("H3", "Yes, it has to fit the workflow."),
             ("H4", "Partly - champions need protected time."),
             ("H1", "Partly. Budgets sit with single providers."),
             ("H6", "Partly. The business case must show savings.")]
        )
    ]
    store.add_responses(responses)
    classifier = LocalClassifier()
    for result in classifier.propose(responses, H):
        store.add_proposal(response_id=result.response_id, backend="local", model="m",
                           proposal=result.proposal, codebook_version=1, model_version="zs")
    for response in responses[3:]:
        store.add_decision(response_id=response.id, reviewer="ann", action="correct",
                           labels=Labels(question=response.question, stance="partly"))
    summary = retrain_and_repropose(store)
    assert summary.fields["stance"] == "zero-shot"
    stance = summary.changes["stance"]
    assert stance["does_not_resonate"][0] == 2 and stance["does_not_resonate"][1] == 2
    store.close()


def test_explicit_openings_work_on_any_agree_disagree_scale() -> None:
    from coder.embedded.features import canonical_stances

    assert canonical_stances([("support", "Support"), ("partly", "Partly"), ("oppose", "Oppose")]) == {
        "resonates": "support", "partly": "partly", "does_not_resonate": "oppose"
    }
    # A 5-point sentiment scale cannot be read from "Yes" / "No": no mapping at all.
    five = [("very_positive", ""), ("positive", ""), ("neutral", ""), ("negative", ""), ("very_negative", "")]
    assert canonical_stances(five) == {}
    codebook = _two_topic_codebook(False).model_copy(
        update={"stance": StanceScale(values=[StanceValue(id="support"), StanceValue(id="partly"),
                                              StanceValue(id="oppose")])}
    )
    responses = [
        Response(id="s", text="Yes, absolutely - free parking would help.", question="P"),
        Response(id="p", text="Yes, but only for staff on night shifts.", question="P"),
        Response(id="o", text="No. Parking is not the problem here.", question="P"),
    ]
    by_id = {r.response_id: r.proposal for r in LocalClassifier().propose(responses, codebook)}
    assert [by_id[k].stance for k in "spo"] == ["support", "partly", "oppose"]  # type: ignore[union-attr]
