"""The cascade: the local model settles confident answers, the LLM gets the rest.

The LLM is tests/llm_gold_server.py (answers from gold with a set error rate): the tests
check routing, calibration arithmetic, provenance and resuming, never model quality.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from coder.cascade import FIELDS, choose_cut, item_agreement
from coder.cli import cli
from coder.store import Store
from eval.gold import load_gold
from eval.runner import gold_labels
from eval.simulate import build_project
from schemas import Labels, Proposal, ThemeAssignment
from tests.conftest import shared_path
from tests.llm_fake_server import make_project, precode_args
from tests.llm_gold_server import GoldAnswers, GoldOpenAI


def run(args: list[str]) -> Any:
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_choose_cut_takes_the_largest_confident_block_that_meets_every_target() -> None:
    # Ten answers: the six most confident are right, then wrong ones mixed in.
    confidences = [0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.5, 0.4, 0.3, 0.2]
    right = np.array([1, 0, 0, 1, 1, 1])  # tp fp fn stance_ok stance_n relevance_ok
    wrong = np.array([0, 1, 1, 0, 1, 1])
    stats = np.vstack([right] * 6 + [wrong] * 4)
    cut, expected = choose_cut(confidences, stats, dict.fromkeys(FIELDS, 0.9), min_settled=3)
    assert cut == 0.94
    assert expected["share"] == 0.6 and expected["themes"] == 1.0
    # One wrong answer among the first seven still averages above 0.8 on every field
    # (micro-F1 12/14, stance 6/7); an eighth would not (12/16).
    stats[6] = right
    stats[3] = wrong
    cut, expected = choose_cut(confidences, stats, dict.fromkeys(FIELDS, 0.8), min_settled=3)
    assert cut == 0.5 and expected["stance"] == pytest.approx(6 / 7)
    # Nothing reaches a target of 1.0 over at least 3 answers once the first is wrong.
    stats[0] = wrong
    assert choose_cut(confidences, stats, dict.fromkeys(FIELDS, 1.0), min_settled=3)[0] is None


def test_equal_confidences_are_settled_together_or_not_at_all() -> None:
    right = np.array([1, 0, 0, 0, 0, 1])
    wrong = np.array([0, 1, 1, 0, 0, 1])
    stats = np.vstack([right, right, right, wrong])
    cut, _ = choose_cut([0.9, 0.9, 0.8, 0.8], stats, dict.fromkeys(FIELDS, 0.9), min_settled=1)
    assert cut == 0.9


def test_item_agreement_scores_like_the_eval_suite() -> None:
    from coder.codebook import builtin_codebook_path, load_codebook

    codebook = load_codebook(builtin_codebook_path())
    theme = codebook.themes_for("H1")[0].id
    other = codebook.themes_for("H1")[1].id
    proposal = Proposal(
        response_id="r",
        question="H1",
        stance=codebook.stance_ids[0],
        themes=[
            ThemeAssignment(code=theme, evidence="x"),
            ThemeAssignment(code=other, evidence="x"),
        ],
    )
    labels = Labels(question="H1", stance=codebook.stance_ids[0], themes=[theme])
    stats = item_agreement(proposal, labels, "H1", codebook)
    assert stats.tolist()[:6] == [1, 1, 0, 1, 1, 1]
    # A reviewer's "not relevant" scores relevance only.
    stats = item_agreement(proposal, Labels(relevant=False), "H1", codebook)
    assert stats.tolist() == [0, 0, 0, 0, 0, 0]


def _rows(db: Path) -> list[dict[str, Any]]:
    with Store(db) as store:
        return [
            {**row, "params": json.loads(row["params"])}
            for row in store.db.query("select * from proposals order by id")
        ]


def test_too_few_reviewed_answers_fall_back_to_rules_only(tmp_path: Path) -> None:
    db = tmp_path / "p.coder"
    make_project(db, n=12).close()
    gold = GoldAnswers([])  # nothing known: the server codes like the plain fake
    with GoldOpenAI(gold) as server:
        result = run(precode_args(db, server, "--cascade"))
    assert result.exit_code == 0, result.output
    assert "cascade fallback" in result.output and "0 reviewed answers" in result.output
    rows = _rows(db)
    settled = [r for r in rows if r["params"].get("route") == "cascade:embedded"]
    sent = [r for r in rows if r["params"].get("route") == "cascade:llm"]
    # Only "n/a" is ruled out by the plain rules; everything else went to the LLM.
    assert [r["response_id"] for r in settled] == ["r005"]
    assert settled[0]["backend"] == "local" and settled[0]["params"]["cascade"]["fallback"]
    assert len(sent) == 11 and {r["backend"] for r in sent} == {"openai"}
    assert len(server.chat_requests) == 11
    assert "1 settled by the local model, 11 sent to the LLM" in " ".join(result.output.split())


@pytest.fixture()
def rapid(tmp_path: Path) -> tuple[Path, Any, list[Any], list[Any]]:
    """A project of the rapid-insight gold answers, 100 of them reviewed with gold labels."""
    codebook, items = load_gold(shared_path("gold", "rapid_insight_dev"))
    order = list(items)
    random.Random(0).shuffle(order)
    reviewed, rest = order[:100], order[100:]
    db = tmp_path / "rapid.coder"
    store = build_project(db, codebook, items)
    for item in reviewed:
        store.add_decision(
            response_id=item.id, reviewer="gold", action="correct", labels=gold_labels(item)
        )
        # Reviewed answers had a proposal before review (so they are not to do).
        store.add_proposal(
            response_id=item.id,
            backend="local",
            model="m",
            proposal=Proposal(response_id=item.id, question=item.question),
            codebook_version=1,
        )
    store.close()
    return db, codebook, reviewed, rest


def test_calibrated_cascade_routes_records_and_resumes(rapid: Any) -> None:
    db, _codebook, _reviewed, rest = rapid
    gold = GoldAnswers.from_folder(shared_path("gold", "rapid_insight_dev"))
    with GoldOpenAI(gold, error_rate=0.1) as server:
        server.add_faults("500", "500")  # two answers fail (one attempt each) ...
        result = run(
            precode_args(
                db, server, "--cascade", "--cascade-precision", "0.7", "--max-attempts", "1"
            )
        )
        assert result.exit_code == 0, result.output
        output = " ".join(result.output.split())
        assert "calibrated on 100 reviewed answers" in output
        assert "zero-shot proposals" in output and "--cascade-precision" in output
        rows = [r for r in _rows(db) if r["params"].get("route")]
        settled = [r for r in rows if r["params"]["route"] == "cascade:embedded"]
        sent = [r for r in rows if r["params"]["route"] == "cascade:llm"]
        assert len(settled) + len(sent) == len(rest)
        marker = settled[0]["params"]["cascade"]
        cuts = marker["field_cuts"]
        assert 0 < len(settled) < len(rest)

        def clears(row: dict[str, Any]) -> bool:
            # The rule that settles most held-out answers: joint score, per field or single.
            if marker["rule"] == "joint":
                mine = row["params"]["cascade"].get("joint_score")
                return mine is not None and mine >= marker["joint_cut"]
            if cuts is None:
                mine = row["params"]["cascade"]["confidence"]
                return mine is not None and mine >= marker["cut"]
            mine = row["params"]["cascade"].get("field_confidence")
            return mine is not None and all(mine[name] >= cuts[name] for name in cuts)

        # Every field of a settled answer cleared its own cut (or plain rules ruled it
        # out: not relevant); a sent one missed at least one cut.
        assert all(clears(r) or json.loads(r["output"])["relevant"] is False for r in settled)
        assert not any(clears(r) for r in sent)
        assert {r["backend"] for r in settled} == {"local"}
        assert sum(r["status"] == "failed" for r in sent) == 2
        assert f"{len(settled)} settled by the local model, {len(sent)} sent to the LLM" in output
        calls_before = len(server.chat_requests)
        # ... and the next run asks the LLM for those two only.
        again = run(precode_args(db, server, "--cascade", "--cascade-precision", "0.7"))
        assert again.exit_code == 0, again.output
        assert len(server.chat_requests) - calls_before == 2
        assert "0 settled by the local model, 2 sent to the LLM" in " ".join(again.output.split())
        third = run(precode_args(db, server, "--cascade", "--cascade-precision", "0.7"))
        assert "0 to do" in " ".join(third.output.split())
        assert len(server.chat_requests) - calls_before == 2


def test_cascade_options_are_checked(tmp_path: Path) -> None:
    db = tmp_path / "p.coder"
    make_project(db, n=2).close()
    result = CliRunner().invoke(cli, ["precode", "--db", str(db), "--cascade"])
    assert result.exit_code == 1 and "--cascade needs --backend openai" in result.output
    result = CliRunner().invoke(cli, ["precode", "--db", str(db), "--cascade-precision", "0.9"])
    assert result.exit_code == 1 and "--cascade-precision goes with --cascade" in result.output


def test_field_cuts_settle_answers_a_single_cut_holds_back() -> None:
    from coder.cascade_cuts import choose_field_cuts, clears

    # 40 answers. Themes are right exactly when the themes confidence is high; stance is
    # right on all but the 10 answers of lowest stance confidence. The overall confidence
    # (the least of the fields) mixes the two, so no single cut keeps stance at 0.9 and
    # themes right together beyond the 10 answers confident in both.
    right = np.array([1, 0, 0, 1, 1, 1])  # tp fp fn stance_ok stance_n relevance_ok
    themes_wrong = np.array([0, 1, 1, 1, 1, 1])
    stance_wrong = np.array([1, 0, 0, 0, 1, 1])
    rows, stats = [], []
    for n in range(40):
        themes_sure = n < 30
        stance_sure = n >= 10  # the 10 stance-unsure answers are among the theme-sure ones
        rows.append([0.95 if themes_sure else 0.4, 0.9 if stance_sure else 0.3, 0.99])
        stats.append(
            right
            if themes_sure and stance_sure
            else themes_wrong
            if not themes_sure
            else stance_wrong
        )
    confidences, matrix = np.array(rows), np.vstack(stats)
    overall = confidences.min(axis=1)
    single, _ = choose_cut(overall, matrix, dict.fromkeys(FIELDS, 0.9), min_settled=5)
    assert single == 0.9 and (overall >= single).sum() == 20  # the sure-in-both answers
    cuts, expected = choose_field_cuts(confidences, matrix, dict.fromkeys(FIELDS, 0.9), 5)
    assert cuts is not None and cuts["themes"] > 0.4 and cuts["stance"] > 0.3
    assert expected["share"] == 0.5 and expected["themes"] == 1.0
    # With a stance target low enough, the stance-unsure answers settle too.
    targets = {"themes": 0.9, "stance": 0.6, "relevance": 0.9}
    cuts, expected = choose_field_cuts(confidences, matrix, targets, 5)
    assert cuts is not None and expected["share"] == 0.75 and expected["stance"] == 20 / 30
    assert sum(clears(row, cuts) for row in confidences) == 30
    # The single cut cannot take the stance-unsure answers without the theme-unsure ones
    # (their overall confidences, 0.3 and 0.4, interleave the wrong way): 20 only.
    single, _ = choose_cut(overall, matrix, targets, min_settled=5)
    assert single == 0.9
    # Nothing meets a themes target of 1.0 over more answers than there are.
    assert choose_field_cuts(confidences, matrix, dict.fromkeys(FIELDS, 1.0), 41) == (None, {})
