"""Reviewed twins: answers worded as reviewed answers are settled from the reviewers' labels
by the cascade, when the twins agree and the rule meets its targets leave-one-out.

The LLM is the plain fake server (tests/llm_fake_server.py): the tests check which answers
it is asked about and what is stored, never model quality.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from click.testing import CliRunner

from coder.cli import cli
from coder.codebook import builtin_codebook_path, load_codebook
from coder.store import Store
from coder.twins import MIN_CHECKED, TwinIndex, twin_key
from schemas import Labels, Proposal, Response
from tests.llm_fake_server import precode_args
from tests.llm_gold_server import GoldAnswers, GoldOpenAI

AGREE = Labels(question="H1", themes=["pathway_approach"], stance="resonates", relevant=True)
OTHER = Labels(question="H1", themes=["policy_levers"], stance="partly", relevant=True)
TARGETS = {"themes": 0.9, "stance": 0.9, "relevance": 0.9}


def _pairs(rows: list[tuple[str, str, Labels]]) -> list[tuple[Response, Labels]]:
    return [(Response(id=rid, text=text, question="H1"), labels) for rid, text, labels in rows]


def test_twins_match_on_question_and_words_not_case_spacing_or_punctuation() -> None:
    assert twin_key("H1", "Very good!!") == twin_key("H1", "  very   GOOD") == ("H1", "very good")
    assert twin_key("H1", "very good") != twin_key("H2", "very good")
    assert twin_key(None, "Did not answer.") == ("", "did not answer")
    assert twin_key("H1", "Very good service") != twin_key("H1", "very good")


def test_an_answer_has_a_twin_only_when_its_reviewed_twins_agree() -> None:
    index = TwinIndex.from_reviewed(
        _pairs(
            [
                ("a1", "Agree.", AGREE),
                ("a2", "agree", AGREE),
                ("d1", "It depends", AGREE),
                ("d2", "it depends!", OTHER),
            ]
        )
    )
    twin = index.twin(Response(id="x", text="AGREE", question="H1"))
    assert twin is not None and twin.response_ids == ("a1", "a2") and twin.labels == AGREE
    assert index.twin(Response(id="y", text="It depends.", question="H1")) is None
    assert index.twin(Response(id="z", text="Agree", question="H2")) is None
    # Leave-one-out: a reviewed answer is not its own twin.
    alone = TwinIndex.from_reviewed(_pairs([("a1", "Agree.", AGREE)]))
    assert alone.twin(Response(id="a1", text="Agree.", question="H1"), leave_out="a1") is None


def test_the_rule_is_trusted_only_when_enough_leave_one_out_checks_meet_the_targets() -> None:
    codebook = load_codebook(builtin_codebook_path())
    consistent = _pairs([(f"a{i}", "Agree", AGREE) for i in range(MIN_CHECKED)])
    check = TwinIndex.from_reviewed(consistent).check(consistent, codebook, TARGETS)
    assert check.trusted and check.checked == MIN_CHECKED
    assert check.levels == {"themes": 1.0, "stance": 1.0, "relevance": 1.0}

    few = consistent[: MIN_CHECKED - 1]
    check = TwinIndex.from_reviewed(few).check(few, codebook, TARGETS)
    assert not check.trusted and f"{MIN_CHECKED} check the rule" in check.reason

    # Groups of three worded alike where one reviewer differs: leaving that one out, the
    # other two agree and the rule proposes the wrong labels for it.
    split = _pairs(
        [
            (f"g{g}-{k}", f"answer number {g}", OTHER if k == 2 else AGREE)
            for g in range(MIN_CHECKED)
            for k in range(3)
        ]
    )
    check = TwinIndex.from_reviewed(split).check(split, codebook, TARGETS)
    assert check.checked == MIN_CHECKED and not check.trusted
    assert check.reason.startswith("below target: themes 0.000 < 0.900")


def _project(db: Path) -> None:
    """24 reviewed "Agree fully" answers, 6 more unreviewed in other spellings; two reviewed
    "It depends" coded differently and one unreviewed; three other unreviewed answers."""
    store = Store(db)
    codebook = load_codebook(builtin_codebook_path())
    store.save_codebook(codebook, source="builtin")
    spellings = ["Agree fully.", "agree fully", "Agree, fully!", "AGREE FULLY"]
    reviewed = [(f"r{i:02d}", spellings[i % 4], AGREE) for i in range(24)]
    reviewed += [("d1", "It depends", AGREE), ("d2", "it depends.", OTHER)]
    todo = [(f"t{i}", spellings[i % 4]) for i in range(6)]
    todo += [("d3", "It depends!"), ("u1", "Funding is the barrier for us"), ("u2", "No idea")]
    todo += [("u3", "Clinical leads made it happen in our trust")]
    store.add_responses(
        Response(id=rid, text=text, question="H1")
        for rid, text in [(rid, text) for rid, text, _ in reviewed] + todo
    )
    for rid, _text, labels in reviewed:
        # Reviewed answers had a proposal before review (so they are not to do).
        proposal_id = store.add_proposal(
            response_id=rid,
            backend="openai",
            model="m",
            proposal=Proposal(response_id=rid, question="H1"),
            codebook_version=1,
        )
        store.add_decision(
            response_id=rid,
            reviewer="ana",
            action="correct",
            labels=labels,
            proposal_id=proposal_id,
        )
    store.close()


def _rows(db: Path) -> list[dict[str, Any]]:
    with Store(db) as store:
        return [
            {**row, "params": json.loads(row["params"])}
            for row in store.db.query("select * from proposals order by id")
        ]


def test_cascade_settles_twins_from_reviewers_labels_and_sends_the_rest(tmp_path: Path) -> None:
    db = tmp_path / "twins.coder"
    _project(db)
    with GoldOpenAI(GoldAnswers([])) as server:
        result = CliRunner().invoke(cli, precode_args(db, server, "--cascade"))
        assert result.exit_code == 0, result.output
        asked = len(server.chat_requests)
    output = " ".join(result.output.split())
    assert "6 of the settled worded as reviewed answers" in output

    rows = {row["response_id"]: row for row in _rows(db)}
    twins = {rid for rid, row in rows.items() if row["params"].get("route") == "cascade:twin"}
    assert twins == {f"t{i}" for i in range(6)}
    row = rows["t2"]
    assert row["backend"] == "local" and row["model"] == "reviewed-twins"
    assert row["model_version"] == "reviewed-twins" and row["codebook_version"] == 1
    assert row["params"]["twin_count"] == 24 and len(row["params"]["twins"]) == 10
    check = row["params"]["cascade"]["twin_check"]
    # 24 "Agree fully" checks right; each "It depends" checked against the other: wrong.
    assert check["trusted"] and check["checked"] == 26
    assert check["levels"]["stance"] == 24 / 26 and check["levels"]["relevance"] == 1.0
    proposal = json.loads(row["output"])
    assert [t["code"] for t in proposal["themes"]] == ["pathway_approach"]
    assert proposal["themes"][0]["evidence"] == "Agree, fully!"  # its own words
    assert proposal["stance"] == "resonates" and proposal["relevant"] is True
    # Reviewers coded "It depends" two ways: that answer is not settled by twins. The LLM
    # was asked about the answers routed to it, and about nothing else.
    sent = {rid for rid, row in rows.items() if row["params"].get("route") == "cascade:llm"}
    assert {"d3", "u1", "u3"} <= sent and not sent & twins
    assert asked == len(sent)


def test_twins_right_beyond_target_let_the_model_settle_more_in_calibration() -> None:
    from coder.cascade_calibration import Calibration, _choose_rule

    # 30 model answers by falling confidence: the first 20 right, then 5 wrong of 10; 20
    # answers the twin rule settles, all right. Relevance is the field that decides.
    right = [1.0] * 20 + [0.0, 1.0] * 5
    model = [[1, 0, 0, 0, 0, r] for r in right]
    twins = [[1, 0, 0, 0, 0, 1.0]] * 20
    confidence = [0.95 - 0.01 * i for i in range(30)] + [0.5] * 20

    def chosen(forced: list[bool]) -> Calibration:
        rows = len(forced)
        calibration = Calibration(
            cut=None,
            targets={"themes": 0.9, "stance": 0.9, "relevance": 0.9},
            target_source="test",
            n_reviewed=rows,
            held_out="test",
            held_out_data={
                "agreement": np.array((model + twins)[:rows], dtype=float),
                "confidence": confidence[:rows],
                "forced": np.array(forced),
            },
        )
        _choose_rule(calibration, ["single"])
        return calibration

    alone = chosen([False] * 30)  # no twins
    # Alone it stops at 24 answers (22 right: 0.917); beyond, the wrong ones pull it under.
    assert alone.cut == confidence[23] and alone.expected["share"] == 0.8
    together = chosen([False] * 30 + [True] * 20)
    # With the twins' 20 right answers counted, all 30 of the model's answers settle
    # (45 right of 50 = 0.9), and the cut is the model's lowest confidence, not a twin's.
    assert together.cut == confidence[29]
    assert together.expected["share"] == 1.0 and together.expected["relevance"] == 0.9
