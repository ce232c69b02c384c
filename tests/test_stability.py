"""Stability: N samples per answer (precode --samples) and N runs (eval --repeat).

The LLM is tests/llm_gold_server.py: it answers from gold with a set error rate and samples
as the request's temperature and seed say, so the arithmetic of majorities and run-to-run
agreement can be checked exactly (never a model-quality figure).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from coder.cli import cli
from coder.codebook import builtin_codebook_path, load_codebook
from coder.stability import majority
from coder.store import Store
from schemas import Proposal, ThemeAssignment
from tests.conftest import shared_path
from tests.llm_fake_server import make_project, precode_args
from tests.llm_gold_server import GoldAnswers, GoldOpenAI


def _proposal(relevant: bool, stance: str | None, codes: list[str]) -> Proposal:
    return Proposal(
        response_id="r1",
        question="H1",
        relevant=relevant,
        stance=stance,
        themes=[ThemeAssignment(code=code, evidence=f"quote {code}") for code in codes],
    )


def test_majority_per_field_and_agreement_as_confidence() -> None:
    samples = [
        _proposal(True, "partly", ["a", "b"]),
        _proposal(True, "partly", ["a"]),
        _proposal(True, "resonates", ["a", "c"]),
        _proposal(False, None, []),
        _proposal(True, "partly", ["a"]),
    ]
    combined = majority(samples)
    assert combined.relevant and combined.relevance_confidence == 0.8
    assert combined.stance == "partly" and combined.stance_confidence == 0.6
    # 'a' in 4 of 5 samples; 'b' and 'c' in one each: only 'a' has a majority.
    assert [(t.code, t.confidence) for t in combined.themes] == [("a", 0.8)]
    # Two samples (the 2nd and 5th) say exactly (relevant, partly, {a}).
    assert combined.confidence == 0.4
    assert (
        majority(
            [
                _proposal(False, None, []),
                _proposal(True, "partly", ["a"]),
                _proposal(False, None, []),
            ]
        ).relevant
        is False
    )


def test_precode_samples_stores_majority_and_traces_every_sample(tmp_path: Path) -> None:
    db = tmp_path / "p.coder"
    make_project(db, n=6).close()
    codebook = load_codebook(builtin_codebook_path())
    with Store(db) as store:
        responses = list(store.responses())
    gold = GoldAnswers(
        [
            {"id": r.id, "text": r.text, "relevant": True, "stance": codebook.stance_ids[0],
             "labels": [codebook.themes_for(r.question)[0].id]}
            for r in responses
        ]
    )  # fmt: skip
    with GoldOpenAI(gold, error_rate=0.4) as server:
        args = precode_args(db, server, "--samples", "3", "--temperature", "0.7", "--seed", "5")
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert len(server.chat_requests) == 18
        assert {body["seed"] for body in server.chat_requests} == {5, 6, 7}
    with Store(db) as store:
        rows = list(store.db.query("select * from proposals where status = 'ok'"))
        calls = list(store.db.query("select request, response_ids from llm_calls"))
    assert len(rows) == 6
    for row in rows:
        params = json.loads(row["params"])
        samples = params["samples"]
        assert samples["n"] == 3 and samples["seeds"] == [5, 6, 7]
        labels = samples["labels"]
        proposal = json.loads(row["output"])
        agreed = sum(
            (s["relevant"], s["stance"] if s["relevant"] else None, s["themes"])
            == (
                proposal["relevant"],
                proposal["stance"],
                sorted(t["code"] for t in proposal["themes"]),
            )
            for s in labels
        )
        assert row["confidence"] == agreed / 3 == samples["agreement"]
    requests = [json.loads(call["request"]) for call in calls]
    assert sorted(r["seed"] for r in requests) == [5] * 6 + [6] * 6 + [7] * 6
    assert {r["temperature"] for r in requests} == {0.7}
    # With error rate 0.4 over 18 samples, the seeds did not all say the same.
    assert any(json.loads(r["params"])["samples"]["agreement"] < 1 for r in rows)


def _repeat(server: GoldOpenAI, db: Path, *extra: str) -> dict[str, Any]:
    out = db.parent / f"repeat{len(list(db.parent.glob('repeat*.json')))}.json"
    args = [
        "eval", str(shared_path("gold", "rapid_insight_dev")), "--backend", "openai",
        "--model", "gpt-4o-mini", "--limit", "30", "--db", str(db), "--json-file", str(out), *extra,
    ]  # fmt: skip
    env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test"}
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "between runs" in result.output
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def test_eval_repeat_reports_run_to_run_agreement_beside_gold(tmp_path: Path) -> None:
    gold = GoldAnswers.from_folder(shared_path("gold", "rapid_insight_dev"))
    db = tmp_path / "e.coder"
    with GoldOpenAI(gold, error_rate=0.3) as server:
        steady = _repeat(server, db, "--repeat", "2", "--temperature", "0")
        sampled = _repeat(server, db, "--repeat", "3", "--temperature", "0.8", "--seed", "1")
        again = _repeat(server, db, "--repeat", "3", "--temperature", "0.8", "--seed", "1")
    # At temperature 0 every run says the same; the errors fall on the same items.
    assert steady["between_runs"]["themes"]["exact_set_percent"] == 1.0
    assert steady["between_runs"]["relevance"]["percent"] == 1.0
    assert steady["gold"]["themes.micro_f1"]["sd"] == 0.0
    # Sampling moves labels between runs, and the same seeds repeat the same runs.
    assert sampled["between_runs"]["themes"]["exact_set_percent"] < 1.0
    assert sampled["between_runs"]["themes"]["set_alpha_masi"] < 1.0
    assert sampled["seeds"] == [1, 2, 3]
    assert again["between_runs"] == sampled["between_runs"]
    assert again["per_run"] == sampled["per_run"]
    with Store(db) as store:
        runs = store.eval_runs()
        seeds = {
            json.loads(row["request"])["seed"]
            for row in store.db.query("select request from llm_calls")
        }
    assert len(runs) == 3 and seeds == {0, 1, 2, 3}


def test_samples_and_repeat_refuse_what_they_cannot_do(tmp_path: Path) -> None:
    db = tmp_path / "p.coder"
    make_project(db, n=2).close()
    result = CliRunner().invoke(cli, ["precode", "--db", str(db), "--samples", "3"])
    assert result.exit_code == 1 and "--samples needs a backend" in result.output
    gold = str(shared_path("gold", "rapid_insight_dev"))
    result = CliRunner().invoke(cli, ["eval", gold, "--temperature", "0.5", "--no-store"])
    assert result.exit_code == 1 and "--temperature goes with --repeat" in result.output
    result = CliRunner().invoke(cli, ["eval", gold, "--repeat", "2", "--cv", "3", "--no-store"])
    assert result.exit_code == 1 and "cannot be combined with --cv" in result.output
