"""The cascade's joint rule: a cut on a fitted "whole proposal right" score.

Arithmetic on made-up held-out arrays (what the rule can learn that per-field cuts cannot),
then end to end through ``coder precode --cascade --cascade-rule joint`` against the gold
server (tests/llm_gold_server.py: routing and provenance, never model quality).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from coder.cascade import FIELDS, RULES, settles
from coder.cascade_cuts import choose_field_cuts
from coder.cascade_joint import (
    FEATURES,
    JointScore,
    choose_joint_cut,
    fit_joint,
    joint_features,
    whole_right,
)
from coder.cli import cli
from coder.errors import BackendError
from coder.store import Store
from tests.llm_fake_server import precode_args
from tests.llm_gold_server import GoldAnswers, GoldOpenAI
from tests.test_cascade import rapid  # noqa: F401  (the project fixture: 100 answers reviewed)

RIGHT = np.array([1, 0, 0, 1, 1, 1])  # tp fp fn stance_ok stance_n relevance_ok
WRONG = np.array([0, 1, 1, 0, 1, 1])


def held_out(seed: int, count: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Answers whose rightness needs two features at once: short answers are right
    whatever their stance confidence; long ones only when stance is confident too."""
    rng = np.random.default_rng(seed)
    by_field = np.column_stack(
        [rng.uniform(0.6, 1.0, count), rng.uniform(0.3, 1.0, count), np.full(count, 0.99)]
    )
    words = np.where(
        rng.random(count) < 0.5, rng.integers(1, 4, count), rng.integers(12, 40, count)
    )
    right = (words <= 3) | (by_field[:, 1] > 0.85)
    stats = np.vstack([RIGHT if ok else WRONG for ok in right])
    features = joint_features(
        by_field, by_field.min(axis=1), words, np.ones(count), np.ones(count, dtype=bool)
    )
    return features, stats, by_field


def test_joint_score_settles_what_per_field_cuts_cannot_and_keeps_its_promise() -> None:
    features, stats, by_field = held_out(seed=1)
    targets = dict.fromkeys(FIELDS, 0.95)
    score, cut, expected = choose_joint_cut(features, stats, targets)
    assert score is not None and cut is not None
    _, per_field = choose_field_cuts(by_field, stats, targets, 20)
    # Per-field cuts must hold back every short answer of low stance confidence (a stance
    # cut low enough for them lets the long wrong ones in); the joint score need not.
    assert expected["share"] > per_field["share"] + 0.2
    assert all(expected[name] >= targets[name] for name in FIELDS)
    # On new answers from the same source the score and cut keep the promise, within what
    # 600 answers can show (the logistic score only approximates the "or" of the source).
    new_features, new_stats, _ = held_out(seed=2)
    settled = score.score(new_features) >= cut
    assert abs(settled.mean() - expected["share"]) < 0.1
    assert whole_right(new_stats[settled]).mean() >= 0.92


def test_joint_score_is_plain_numbers_that_reproduce_the_fit() -> None:
    from sklearn.linear_model import LogisticRegression

    features, stats, _ = held_out(seed=3, count=200)
    right = whole_right(stats)
    score = fit_joint(features, right)
    assert score is not None
    data = json.loads(json.dumps(score.as_dict()))
    assert data["features"] == list(FEATURES) and len(data["coefficients"]) == len(FEATURES)
    again = JointScore.from_dict(data)
    spread = features.std(axis=0)
    standard = (features - features.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    reference = LogisticRegression(C=1.0, max_iter=2000).fit(standard, right)
    assert np.allclose(again.score(features), reference.predict_proba(standard)[:, 1])


def test_too_few_right_or_wrong_answers_fit_nothing() -> None:
    features, _stats, _ = held_out(seed=4, count=100)
    right = np.zeros(100, dtype=bool)
    right[:9] = True
    assert fit_joint(features, right) is None
    stats = np.vstack([WRONG] * 91 + [RIGHT] * 9)
    assert choose_joint_cut(features, stats, dict.fromkeys(FIELDS, 0.5)) == (None, None, {})


def test_unknown_rules_are_refused(tmp_path: Path) -> None:
    from coder.cascade import calibrate
    from tests.llm_fake_server import make_project

    store = make_project(tmp_path / "p.coder", n=2)
    try:
        with pytest.raises(BackendError, match="single, per_field, joint"):
            calibrate(store, None, store.codebook()[1], rules=("joint", "magic"))
    finally:
        store.close()
    assert RULES == ("single", "per_field", "joint")
    result = CliRunner().invoke(cli, ["precode", "--db", str(tmp_path / "p.coder"),
                                      "--cascade-rule", "joint"])  # fmt: skip
    assert result.exit_code == 1 and "--cascade-rule goes with --cascade" in result.output


def _route_rows(db: Path) -> list[dict[str, Any]]:
    with Store(db) as store:
        rows = store.db.query(
            "select p.*, r.text from proposals p join responses r on r.id = p.response_id "
            "order by p.id"
        )
        found = [{**row, "params": json.loads(row["params"])} for row in rows]
    return [row for row in found if row["params"].get("route")]


def test_joint_rule_routes_and_every_settled_label_reproduces_its_score(
    rapid: Any,  # noqa: F811
) -> None:
    db, _codebook, _reviewed, rest = rapid
    gold = GoldAnswers.from_folder(_gold_folder())
    with GoldOpenAI(gold, error_rate=0.1) as server:
        args = ["--cascade", "--cascade-precision", "0.7", "--cascade-rule", "joint"]
        result = CliRunner().invoke(cli, precode_args(db, server, *args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "on the joint 'whole proposal right' score" in output
    rows = _route_rows(db)
    settled = [r for r in rows if r["params"]["route"] == "cascade:embedded"]
    sent = [r for r in rows if r["params"]["route"] == "cascade:llm"]
    assert len(settled) + len(sent) == len(rest) and 0 < len(settled) < len(rest)
    assert len(server.chat_requests) == len(sent)
    marker = settled[0]["params"]["cascade"]
    assert marker["rule"] == "joint" and marker["field_cuts"] is None and marker["cut"] is None
    score = JointScore.from_dict(marker["joint_model"])
    cut = marker["joint_cut"]
    for row in settled:
        recorded = row["params"]["cascade"]
        proposal = json.loads(row["output"])
        # The recorded numbers give the recorded score: the label's path can be re-derived.
        features = joint_features(
            np.array([[recorded["field_confidence"][name] for name in FIELDS]]),
            np.array([recorded["confidence"]]),
            np.array([len(row["text"].split())]),
            np.array([len(proposal["themes"])]),
            np.array([proposal["relevant"] is not False]),
        )
        assert score.score(features)[0] == pytest.approx(recorded["joint_score"])
        assert recorded["joint_score"] >= cut or proposal["relevant"] is False
        assert row["backend"] == "local"
    assert all(r["params"]["cascade"]["joint_score"] < cut for r in sent)
    assert f"{len(settled)} settled by the local model, {len(sent)} sent to the LLM" in output


def test_settles_follows_the_rule_that_decides() -> None:
    from coder.backends.base import ProposalResult
    from coder.cascade_calibration import Calibration
    from schemas import Proposal, Response

    response = Response(id="r", text="long enough answer to say something", question="H1")
    proposal = Proposal(response_id="r", question="H1", confidence=0.99)
    result = ProposalResult(response_id="r", proposal=proposal)
    joint = Calibration(cut=None, targets={}, target_source="t", n_reviewed=60, held_out="x")
    joint.joint_score = JointScore(means=(0.0,), scales=(1.0,), coefficients=(1.0,), intercept=0)
    joint.joint_cut = 0.8
    assert joint.rule == "joint"
    # A high overall confidence does not settle under the joint rule: its score decides.
    assert not settles(result, response, joint, np.ones(3), joint_score=0.5)
    assert settles(result, response, joint, np.ones(3), joint_score=0.8)
    assert not settles(result, response, joint, np.ones(3), joint_score=None)


def _gold_folder() -> Path:
    from tests.conftest import shared_path

    return shared_path("gold", "rapid_insight_dev")
