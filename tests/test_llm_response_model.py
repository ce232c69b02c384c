"""The run-time response model: only the codebook's codes, quotes from the text, prompt hashes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from coder.codebook import builtin_codebook_path, load_codebook
from coder.llm import prompts
from coder.llm.config import build_settings, default_mode, is_local_endpoint
from coder.llm.pricing import PriceTable, estimate_tokens
from coder.llm.response_model import build_batch_model, build_item_model, quote_in_text, to_proposal
from coder.llm.retry import retry_after_seconds
from schemas import Codebook, Question, Theme

TEXT = "The  pathway approach helped us.\nClinical leadership made the difference…"


@pytest.fixture
def codebook() -> Codebook:
    return Codebook(
        name="test",
        questions=[Question(id="H1", text="Pathways?"), Question(id="H2", text="Leaders?")],
        themes=[
            Theme(id="pathway", label="Pathway", definition="d", questions=["H1"]),
            Theme(id="leadership", label="Leadership", definition="d", questions=["H2"]),
            Theme(id="funding", label="Funding", definition="d"),
        ],
    )


def context(codebook: Codebook) -> dict[str, object]:
    return {"codebook": codebook, "texts": {"r1": TEXT}, "response_id": "r1", "question": "H1"}


def item(code: str, evidence: str, question: str = "H1") -> dict[str, object]:
    return {
        "question": question,
        "relevant": True,
        "stance": "resonates",
        "themes": [{"code": code, "evidence": evidence, "confidence": 0.9}],
    }


def test_only_codes_of_the_question_are_accepted(codebook: Codebook) -> None:
    model = build_item_model(codebook, "H1")
    ok = model.model_validate(item("pathway", "pathway approach helped"), context=context(codebook))
    assert to_proposal(ok, "r1", "H1").theme_codes == ["pathway"]
    model.model_validate(item("funding", "helped us"), context=context(codebook))
    with pytest.raises(ValidationError):  # another question's code: not in the Literal
        model.model_validate(item("leadership", "Clinical leadership"), context=context(codebook))
    with pytest.raises(ValidationError):  # not in the codebook at all
        model.model_validate(item("everything", "helped us"), context=context(codebook))
    with pytest.raises(ValidationError, match="does not apply to question 'H2'"):
        model.model_validate(item("pathway", "helped us", question="H2"), context=context(codebook))
    with pytest.raises(ValidationError):  # stance outside the scale
        model.model_validate(
            {**item("pathway", "helped us"), "stance": "love_it"}, context=context(codebook)
        )


def test_evidence_must_be_a_quote(codebook: Codebook) -> None:
    model = build_item_model(codebook, "H1")
    with pytest.raises(ValidationError, match="is not a quote from response r1"):
        model.model_validate(item("pathway", "the respondent loved it"), context=context(codebook))
    assert quote_in_text("THE PATHWAY approach   helped us", TEXT)
    assert quote_in_text("“pathway approach helped us.”", TEXT)
    assert quote_in_text("pathway approach ... made the difference", TEXT)
    assert quote_in_text("Clinical leadership made the difference.", TEXT)
    assert not quote_in_text("made the difference ... pathway", TEXT)
    assert not quote_in_text("", TEXT)


def test_batch_model_ids_are_restricted(codebook: Codebook) -> None:
    model = build_batch_model(codebook, "H1", ["r1", "r2"])
    with pytest.raises(ValidationError):
        model.model_validate({"items": [{**item("pathway", "helped us"), "response_id": "r9"}]})


def test_prompt_hashes_version_the_prompt(codebook: Codebook) -> None:
    first = prompts.render_system_prompt(codebook, "H1")
    assert first == prompts.render_system_prompt(codebook, "H1")
    assert "pathway" in first.text and "leadership" not in first.text  # only H1's codes
    assert "Pathways?" in first.text and "resonates" in first.text
    changed = codebook.model_copy(deep=True)
    changed.themes[0].definition = "a new definition"
    second = prompts.render_system_prompt(changed, "H1")
    assert second.hash != first.hash and second.template_hash == first.template_hash


def test_builtin_codebook_renders_for_every_question() -> None:
    codebook = load_codebook(builtin_codebook_path())
    for question_id in codebook.question_ids:
        system = prompts.render_system_prompt(codebook, question_id)
        assert codebook.question(question_id).text in system.text
        build_item_model(codebook, question_id).model_json_schema()


def test_settings_defaults_and_prices() -> None:
    assert default_mode("https://api.openai.com/v1") == "json_schema"
    assert default_mode("http://127.0.0.1:8080/v1") == "tools"
    assert default_mode("http://localhost:11434/v1") == "json"
    assert is_local_endpoint("http://[::1]:8000/v1") and not is_local_endpoint("https://x.org/v1")
    assert build_settings(model="m", batch_size=None).batch_size == 1
    prices = PriceTable.load()
    assert prices.cost("gpt-4o-mini-2024-07-18", 1_000_000, 0) == pytest.approx(0.15)
    assert prices.cost("my-local-model", 10, 10) is None
    assert prices.cost("my-local-model", 10, 10, local=True) == 0.0
    assert estimate_tokens("abcd" * 100) == 100


def test_retry_after_header_is_read() -> None:
    import httpx2
    import openai

    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(429, headers={"retry-after": "7"}, request=request)
    error = openai.RateLimitError("slow down", response=response, body=None)
    assert retry_after_seconds(error) == 7.0
