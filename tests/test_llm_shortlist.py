"""The codebook shortlist: each LLM prompt carries only the likeliest themes.

End to end through ``coder precode`` against the fake OpenAI-compatible server (the
shortlist, the response model's codes, the hash of what was sent, the cache key), plus
the cut's choice on reviewed answers and the escape field ``other_theme_needed``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.codebook import builtin_codebook_path, load_codebook
from coder.llm.classifier import LLMClassifier
from coder.llm.response_model import build_item_model, to_proposal
from coder.llm.shortlist import MIN_CALIBRATION_ANSWERS, Cut, choose_cut, recall_at
from coder.store import Store
from schemas import Codebook, Labels, Proposal, Question, Response, Theme
from tests.conftest import shared_path
from tests.llm_fake_server import FakeOpenAI, make_project, precode_args

RESPONSE_ID = re.compile(r'<response id="([^"]+)">')


@pytest.fixture
def fake() -> Any:
    with FakeOpenAI() as server:
        yield server


def run(args: list[str]) -> Any:
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def stored_params(store: Store) -> dict[str, dict[str, Any]]:
    """Each response's latest proposal's params (the provenance of its prompt)."""
    rows = store.db.query("select response_id, params from proposals order by id")
    return {row["response_id"]: json.loads(row["params"]) for row in rows}


def sent(fake: FakeOpenAI) -> list[tuple[str, str, list[str]]]:
    """(response id, system prompt, codes allowed by the tool schema) per request."""
    out = []
    for body in fake.chat_requests:
        system = next(m["content"] for m in body["messages"] if m["role"] == "system")
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        parameters = body["tools"][0]["function"]["parameters"]
        theme = next(
            definition
            for name, definition in parameters.get("$defs", {}).items()
            if name.startswith("Theme_")
        )
        codes = theme["properties"]["code"]["enum"]
        found = RESPONSE_ID.search(user)
        assert found
        out.append((found.group(1), system, codes))
    return out


def test_each_prompt_carries_its_shortlist_and_the_hash_of_what_was_sent(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    db = tmp_path / "p.db"
    make_project(db, n=6).close()
    result = run(precode_args(db, fake, "--shortlist-size", "3"))
    assert result.exit_code == 0, result.output
    codebook = load_codebook(builtin_codebook_path())
    with Store(db) as store:
        stored = store.current_proposals()
        responses = {r.id: r for r in store.responses()}
        params = stored_params(store)
    requests = sent(fake)
    assert len(requests) == 6
    for response_id, system, codes in requests:
        applicable = [t.id for t in codebook.themes_for(responses[response_id].question)]
        parents = {t.parent for t in codebook.themes if t.parent}
        # The top 3, plus parents of sub-themes among them: fewer than the question has.
        assert 3 <= len(codes) <= 3 + len(parents) and len(codes) < len(applicable)
        assert set(codes) <= set(applicable)
        listed = re.findall(r"^### (\S+) —", system, re.MULTILINE)
        assert listed == codes  # the prompt lists exactly the codes the model may return
        assert "other_theme_needed" in system
        proposal = stored[response_id]
        # Traceability: the stored hash is the hash of the very system prompt sent.
        assert proposal.system_prompt_hash == hashlib.sha256(system.encode()).hexdigest()
        assert params[response_id]["shortlist"] == codes
        assert params[response_id]["shortlist_cut"]["source"] == "option"
        assert set(proposal.proposal.theme_codes) <= set(codes)
    # The static instructions come first and are the same for every answer to a question
    # (a provider's prompt cache covers them); the themes come after.
    by_question: dict[str | None, set[str]] = {}
    for response_id, system, _ in requests:
        by_question.setdefault(responses[response_id].question, set()).add(
            system.split("## Themes (codes)")[0]
        )
    assert all(len(prefixes) == 1 for prefixes in by_question.values())


def test_no_shortlist_sends_every_code_and_is_a_different_cache_key(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    db = tmp_path / "p.db"
    make_project(db, n=4).close()
    assert run(precode_args(db, fake, "--shortlist-size", "3")).exit_code == 0
    assert len(fake.chat_requests) == 4
    whole = run(precode_args(db, fake, "--redo", "--no-shortlist"))
    assert whole.exit_code == 0, whole.output
    # Another prompt, so not served from the shortlisted run's cache.
    assert len(fake.chat_requests) == 8
    codebook = load_codebook(builtin_codebook_path())
    with Store(db) as store:
        questions = {r.id: r.question for r in store.responses()}
        params = stored_params(store)
    for response_id, system, codes in sent(fake)[4:]:
        assert codes == [t.id for t in codebook.themes_for(questions[response_id])]
        assert "other_theme_needed" not in system
        assert "shortlist" not in params[response_id]
    again = run(precode_args(db, fake, "--redo", "--no-shortlist"))
    assert "4 from cache" in again.output and len(fake.chat_requests) == 8


def test_small_codebook_is_sent_whole_without_loading_the_ranker() -> None:
    codebook = Codebook(
        name="small",
        questions=[Question(id="Q1", text="Why?")],
        themes=[Theme(id=f"t{i}", label=f"T{i}", definition="d") for i in range(5)],
    )
    classifier = LLMClassifier(model="m", base_url="http://127.0.0.1:9/v1")
    assert classifier.shortlister(codebook) is None
    assert classifier._scorer is None  # the embedded model was never built
    schema = build_item_model(codebook, "Q1", theme_ids=None).model_json_schema()
    assert "other_theme_needed" not in json.dumps(schema)


def test_option_off_through_settings() -> None:
    classifier = LLMClassifier(model="m", base_url="http://127.0.0.1:9/v1", shortlist="off")
    assert classifier.settings.shortlist is False
    assert classifier.shortlister(load_codebook(builtin_codebook_path())) is None


def ranking(codes: list[str], scores: list[float]) -> list[tuple[str, float]]:
    return sorted(zip(codes, scores, strict=True), key=lambda pair: -pair[1])


def calibration_set(answers: int, every: int) -> tuple[list[Any], list[list[str]]]:
    """Rankings of 20 codes; the answer's code ranks 1st-3rd, except one in ``every``
    that ranks 15th."""
    codes = [f"c{i}" for i in range(20)]
    rankings, gold = [], []
    for answer in range(answers):
        rankings.append(ranking(codes, [1.0 - i / 20 for i in range(20)]))
        gold.append([codes[14]] if answer % every == 0 else [codes[answer % 3]])
    return rankings, gold


def test_choose_cut_reaches_the_target_with_the_fewest_codes() -> None:
    # 995 of 1,000 codes in the top 3: the smallest size allowed (6) reaches 0.98 with
    # its margin of two standard errors (0.989).
    rankings, gold = calibration_set(1000, 200)
    cut = choose_cut(rankings, gold, target_recall=0.98)
    assert cut is not None and cut.source == "reviewed" and cut.answers == 1000
    assert cut.size == 6 and cut.threshold is None
    found, mean_size = recall_at(rankings, gold, cut.size or 0, cut.threshold)
    assert found >= 0.98 and cut.recall == round(found, 4) and mean_size == 6
    # 98 of 100 in the top 3 is the target exactly, but not with the margin: the cut
    # must take the 15th code in too (a threshold), and then holds every code.
    rankings, gold = calibration_set(100, 50)
    cut = choose_cut(rankings, gold, target_recall=0.98)
    assert cut is not None and cut.threshold is not None and cut.recall == 1.0
    short = MIN_CALIBRATION_ANSWERS - 1
    assert choose_cut(rankings[:short], gold[:short]) is None


def test_a_question_with_few_codes_keeps_them_all() -> None:
    assert Cut(size=None).size_for(4) == 4
    assert Cut(size=None).size_for(12) == 12  # the default's floor: sent whole
    assert Cut(size=12, source="reviewed").size_for(48) == 12
    assert Cut(size=3, source="reviewed").size_for(48) == 6  # MIN_SIZE
    assert Cut(size=None).size_for(48) == 29  # the measured default share of 60%
    assert Cut(size=2, source="option").size_for(48) == 2


def test_other_theme_needed_reaches_the_stored_proposal(tmp_path: Path) -> None:
    codebook = load_codebook(builtin_codebook_path())
    question = codebook.question_ids[0]
    codes = [t.id for t in codebook.themes_for(question)][:2]
    model = build_item_model(codebook, question, theme_ids=codes)
    item = model.model_validate(
        {"relevant": True, "themes": [], "other_theme_needed": "  funding  "}
    )
    proposal = to_proposal(item, "r1", question)
    assert proposal.other_theme_needed == "funding"
    with Store(tmp_path / "p.db") as store:
        store.save_codebook(codebook)
        store.add_responses([Response(id="r1", text="x", question=question)])
        version, _ = store.codebook()
        store.add_proposal(
            response_id="r1",
            backend="openai",
            model="m",
            proposal=proposal,
            codebook_version=version,
        )
        assert store.current_proposals()["r1"].proposal.other_theme_needed == "funding"
    # Rows written before the field existed still load.
    old = proposal.model_dump()
    del old["other_theme_needed"]
    assert Proposal.model_validate(old).other_theme_needed is None


def test_reviewed_answers_choose_the_cut(tmp_path: Path) -> None:
    from eval.gold import load_gold

    codebook, items = load_gold(shared_path("gold/rapid_insight_dev"))
    with Store(tmp_path / "p.db") as store:
        store.save_codebook(codebook)
        store.add_responses(item.to_response() for item in items)
        for item in items:
            labels = Labels(
                question=item.question, relevant=item.relevant is not False, themes=item.labels
            )
            store.add_decision(response_id=item.id, reviewer="ann", action="correct", labels=labels)
        classifier = LLMClassifier(
            model="m", base_url="http://127.0.0.1:9/v1", model_store=store, examples=0
        )
        cut = classifier.shortlist_cut(codebook)
    assert cut.source == "reviewed" and cut.answers >= MIN_CALIBRATION_ANSWERS
    assert cut.recall is not None and cut.recall >= 0.98


def test_blend_adds_the_standardised_zero_shot_match_to_the_trained_log_odds() -> None:
    from coder.llm.shortlist import blend, ranked

    trained = {"a": 0.30, "b": 0.02, "c": 0.03}
    zero = {"a": 0.5, "b": 0.9, "c": 0.1}
    assert blend(trained, zero, 0.0) is trained
    assert [code for code, _ in ranked(trained)] == ["a", "c", "b"]
    # b's text matches the answer best: a small weight lifts it above c, a large one above a.
    assert [code for code, _ in ranked(blend(trained, zero, 0.5))] == ["a", "b", "c"]
    assert [code for code, _ in ranked(blend(trained, zero, 3.0))] == ["b", "a", "c"]
    # The zero-shot scores' scale does not matter, only their spread over the answer.
    scaled = {code: 10 * value + 4 for code, value in zero.items()}
    assert blend(trained, scaled, 0.5) == pytest.approx(blend(trained, zero, 0.5))


@pytest.mark.slow  # trains the embedded model (seconds on a quiet machine)
def test_a_trained_ranking_chooses_its_blend_weight_on_reviewed_answers() -> None:
    from coder.embedded.classifier import LocalClassifier
    from coder.llm.shortlist import BLEND_WEIGHTS, blend, ranked
    from eval.gold import load_gold
    from eval.runner import labelled_examples

    codebook, items = load_gold(shared_path("gold/rapid_insight_dev"))
    train, rest = items[::2], items[1::2]
    scorer = LocalClassifier(use_stored_model=False)
    scorer.prepare([item.to_response() for item in items], codebook)
    scorer.fit(labelled_examples(train), codebook)
    classifier = LLMClassifier(
        model="m", base_url="http://127.0.0.1:9/v1", scorer=scorer, examples=0
    )
    responses = [item.to_response() for item in rest]
    gold = [list(item.labels) if item.relevant is not False else [] for item in rest]
    cut = classifier.calibrate_shortlist(responses, gold, codebook)
    assert cut is not None and cut.blend in BLEND_WEIGHTS
    assert cut.describe()["blend"] == cut.blend
    # The weight chosen gives lists no longer than the trained ranking alone.
    zero = classifier.choice.zero_scorer()
    assert zero is not None and zero.state is None
    trained_scores = scorer.code_scores(responses, codebook)
    zero_scores = zero.code_scores(responses, codebook)

    def mean_size(weight: float) -> float:
        rankings = [
            ranked(blend(t, z, weight)) for t, z in zip(trained_scores, zero_scores, strict=True)
        ]
        alone = choose_cut(rankings, gold)
        assert alone is not None
        return recall_at(rankings, gold, alone.size or 0, alone.threshold)[1]

    assert mean_size(cut.blend) <= min(mean_size(w) for w in BLEND_WEIGHTS) + 1e-9
    # Its shortlists rank with the same blend (the zero-shot scorer rides along).
    shortlister = classifier.shortlister(codebook)
    assert shortlister is not None and shortlister.cut is cut
    assert (shortlister.zero_scorer is not None) == bool(cut.blend)
