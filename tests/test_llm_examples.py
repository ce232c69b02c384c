"""Examples from reviewers: the most similar reviewed answers, with their final labels, in
the prompt (dynamic few-shot), never the answer's own label."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.codebook import builtin_codebook_path, load_codebook
from coder.llm.classifier import LLMClassifier, _Planned
from coder.llm.examples import Example, ExamplePool
from coder.store import Store
from schemas import Labels, Response
from tests.llm_fake_server import FakeOpenAI, make_project, precode_args

EXAMPLE = re.compile(r"<example>\n(.*?)\n</example>", re.DOTALL)
RESPONSE = re.compile(r'<response id="([^"]+)">\n(.*?)\n</response>', re.DOTALL)


@pytest.fixture
def fake() -> Any:
    with FakeOpenAI() as server:
        yield server


def review(store: Store, count: int) -> dict[str, list[str]]:
    """Reviewers label the first ``count`` answers with the first code of their question."""
    _, codebook = store.codebook()
    given = {}
    for response in list(store.responses())[:count]:
        code = codebook.themes_for(response.question)[0].id
        store.add_decision(
            response_id=response.id,
            reviewer="ann",
            action="correct",
            labels=Labels(question=response.question, themes=[code]),
        )
        given[response.id] = [code]
    return given


def test_prompts_show_similar_reviewed_answers_but_never_the_answer_itself(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    db = tmp_path / "p.db"
    with make_project(db, n=8) as store:
        given = review(store, 5)
    args = precode_args(db, fake, "--redo", "--examples", "2", "--shortlist-size", "3")
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with Store(db) as store:
        texts = {r.id: r.text for r in store.responses()}
        rows = store.db.query("select response_id, params from proposals order by id")
        params = {row["response_id"]: json.loads(row["params"]) for row in rows}
    assert len(fake.chat_requests) == 8
    for body in fake.chat_requests:
        system = body["messages"][0]["content"]
        response_id, text = RESPONSE.findall(body["messages"][1]["content"])[0]
        shown = EXAMPLE.findall(system)
        assert 1 <= len(shown) <= 2
        assert text not in shown  # its own label would be the answer
        used = params[response_id]["examples"]
        assert response_id not in used and set(used) <= set(given)
        assert [texts[i] for i in used] == shown
        # An example's codes join the shortlist (the model may need them).
        for example_id in used:
            assert set(given[example_id]) <= set(params[response_id]["shortlist"])
        # Static instructions first, then themes, then examples: the per-answer part last.
        assert system.index("## Safety") < system.index("## Themes") < system.index("<example>")


def test_the_pool_is_part_of_the_cache_key(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    with make_project(db, n=6) as store:
        review(store, 2)
        _, codebook = store.codebook()
        response = next(iter(store.responses()))
        first = LLMClassifier(model="m", base_url="http://127.0.0.1:9/v1", model_store=store)
        before = first.input_hash(response, codebook)
        review(store, 3)  # another reviewed answer: other examples may be shown
        second = LLMClassifier(model="m", base_url="http://127.0.0.1:9/v1", model_store=store)
        assert second.input_hash(response, codebook) != before
        off = LLMClassifier(
            model="m", base_url="http://127.0.0.1:9/v1", model_store=store, examples=0
        )
        assert off.examples_wanted() == 0 and off.example_pool() is None


def test_examples_sent_to_a_remote_endpoint_are_redacted(tmp_path: Path) -> None:
    codebook = load_codebook(builtin_codebook_path())
    question = codebook.question_ids[0]
    code = codebook.themes_for(question)[0].id
    classifier = LLMClassifier(model="m", base_url="https://llm.example.invalid/v1", examples=1)
    secret_mail = "jane.doe@example.org"
    pool = ExamplePool(
        [
            Example(
                "e1",
                question,
                f"Leadership helped; write to {secret_mail} for the business case",
                Labels(question=question, themes=[code]),
            )
        ],
        classifier.scorer.embed,
    )
    classifier._example_pool = pool
    response = Response(id="r1", text="The leadership helped the business case.", question=question)
    system = classifier._messages(codebook, _Planned(question, [response]))[0]["content"]
    assert "<example>" in system and secret_mail not in system


def test_coder_eval_gives_the_llm_the_training_items_as_examples(tmp_path: Path) -> None:
    """`coder eval --backend openai` with training items: they are the prompt examples and
    choose the shortlist cut (the LLM's fit) instead of being ignored."""
    from eval.gold import load_gold
    from tests.conftest import shared_path
    from tests.llm_gold_server import GoldAnswers, GoldOpenAI

    gold_dir = shared_path("gold/rapid_insight_dev")
    codebook, items = load_gold(gold_dir)
    rows = [
        {"id": i.id, "text": i.text, "labels": list(i.labels), "stance": i.stance,
         "relevant": i.relevant is not False}
        for i in items
    ]  # fmt: skip
    with GoldOpenAI(GoldAnswers(rows), error_rate=0.0) as server:
        args = [
            "eval", str(gold_dir), "--backend", "openai", "--model", "gold",
            "--train-filter", "group=H1", "--limit", "12", "--no-store", "--no-baselines",
        ]  # fmt: skip
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test"}
        result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "does not learn" not in result.output
        requests = list(server.chat_requests)
    assert requests
    train_texts = {i.text for i in items if i.group == "H1"}
    shown = []
    for body in requests:
        system = body["messages"][0]["content"]
        answer = body["messages"][-1]["content"]
        shown += EXAMPLE.findall(system) + EXAMPLE.findall(answer)
    assert shown, "the training items appear as examples"
    assert any(any(t in e for t in train_texts) for e in shown)
