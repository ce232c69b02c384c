"""Zero-shot relevance of the embedded classifier: plain signals and the codebook's rule."""

from __future__ import annotations

from coder.codebook import builtin_codebook_path, load_codebook
from coder.embedded.classifier import LocalClassifier
from coder.embedded.features import non_answer_reason
from schemas import Response


def test_plain_non_answers() -> None:
    assert non_answer_reason("#NHSSomerset") == "hashtags only"
    assert non_answer_reason("  #ICS #Dorset. ") == "hashtags only"
    assert non_answer_reason("n/a") is not None
    assert non_answer_reason("Yes, resonates #ICS") is None


def test_zero_shot_uses_the_codebooks_not_relevant_examples() -> None:
    codebook = load_codebook(builtin_codebook_path())
    responses = [
        Response(id="a", text="Could we get the slides after the session please?", question="H1"),
        Response(id="b", text="#NHSSomerset", question="H2"),
        Response(id="c", text="Clinical champions who tell a persuasive story are pivotal.", question="H4"),
    ]
    results = LocalClassifier().propose(responses, codebook)
    by_id = {result.response_id: result.proposal for result in results}
    assert by_id["a"] is not None and not by_id["a"].relevant
    assert "off-topic, like 'Can we have the slides" in (by_id["a"].relevance_reason or "")
    assert by_id["b"] is not None and not by_id["b"].relevant
    assert by_id["c"] is not None and by_id["c"].relevant
    assert "clinical_leadership" in by_id["c"].theme_codes


def test_stance_cues_for_the_default_scale() -> None:
    from coder.embedded.features import stance_cue

    ids = ["resonates", "partly", "does_not_resonate", "unclear"]
    assert stance_cue("Partly. A pathway approach is right but...", ids) == "partly"
    assert stance_cue("Yes, but one-year funding pots...", ids) == "partly"
    assert stance_cue("Not really. Policy is rarely the blocker", ids) == "does_not_resonate"
    assert stance_cue("Doesn't resonate. Cost savings are rarely cash-releasing", ids) == "does_not_resonate"
    assert stance_cue("Absolutely. We sold a device into one clinic", ids) == "resonates"
    assert stance_cue("Yes, this resonates.", ids) == "resonates"
    assert stance_cue("Nobody shares what didn't work.", ids) is None
    assert stance_cue("Yes", ["pro", "con"]) is None
    # No view, and a negated "definitely": the embedding reads both as agreement.
    for text in ("I don't know", "Not sure really", "No opinion.", "Hard to say"):
        assert stance_cue(text, ids) == "unclear", text
    for text in ("Definitely not in my experience", "Not for us.", "Absolutely not"):
        assert stance_cue(text, ids) == "does_not_resonate", text
    assert stance_cue("I know this works: we did it", ids) is None
    assert stance_cue("Don't know", ["resonates", "does_not_resonate"]) is None


def test_zero_shot_short_answers_without_a_view_are_unclear() -> None:
    codebook = load_codebook(builtin_codebook_path())
    responses = [
        Response(id="k", text="I don't know", question="H3"),
        Response(id="d", text="Definitely not in my experience", question="H3"),
    ]
    by_id = {r.response_id: r.proposal for r in LocalClassifier().propose(responses, codebook)}
    assert by_id["k"] is not None and by_id["k"].stance == "unclear"
    assert by_id["d"] is not None and by_id["d"].stance == "does_not_resonate"


def test_zero_shot_stance_follows_an_explicit_opening() -> None:
    codebook = load_codebook(builtin_codebook_path())
    responses = [
        Response(id="p", text="Partly. Budgets sit with single providers.", question="H1"),
        Response(id="n", text="Not really. Procurement is the blocker.", question="H2"),
    ]
    by_id = {r.response_id: r.proposal for r in LocalClassifier().propose(responses, codebook)}
    assert by_id["p"] is not None and by_id["p"].stance == "partly"
    assert by_id["n"] is not None and by_id["n"].stance == "does_not_resonate"


def test_an_off_topic_match_is_as_sure_as_it_is_close_to_its_example() -> None:
    from coder.embedded.relevance import RULE_CONFIDENCE, off_topic_confidence

    codebook = load_codebook(builtin_codebook_path())
    responses = [
        Response(id="slides", text="Can we get the slides?", question="H1"),
        Response(id="nothing", text="Nothing", question="Q10"),
        Response(id="blank", text="n/a", question="H2"),
    ]
    by_id = {r.response_id: r.proposal for r in LocalClassifier().propose(responses, codebook)}
    slides, nothing, blank = by_id["slides"], by_id["nothing"], by_id["blank"]
    assert slides is not None and nothing is not None and blank is not None
    # All three are excluded; a near copy of workshop chatter and a plain rule are sure,
    # a loose match ("Nothing" is nearest to "The connection keeps dropping.") is not, so
    # a reviewer working from the least sure answers sees it first.
    assert not (slides.relevant or nothing.relevant or blank.relevant)
    assert slides.confidence >= 0.9 and blank.confidence == RULE_CONFIDENCE
    assert 0.5 <= nothing.confidence < 0.7 and nothing.relevance_confidence == nothing.confidence
    assert off_topic_confidence(0.30) == 0.5 and off_topic_confidence(0.9) == RULE_CONFIDENCE
