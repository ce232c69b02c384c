"""``coder eval simulate``: replaying a gold set as the reviewer of a real project file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.codebook import builtin_codebook_path, load_codebook
from coder.store import Store
from eval.gold import load_gold
from eval.simulate import gold_target, label_edits
from schemas import Labels

pytest.importorskip("coder.embedded.classifier", reason="the local backend is not available")

RAPID = Path(__file__).resolve().parents[1].parent / "shared" / "gold" / "rapid_insight_dev"


def test_label_edits_count_each_change_once() -> None:
    codebook = load_codebook(builtin_codebook_path())
    target = Labels(question="H1", stance="resonates", themes=["pathway_approach", "process"])
    assert sum(label_edits(target, target, codebook).values()) == 0
    shown = Labels(question="H1", stance="partly", themes=["pathway_approach", "policy_levers"])
    # one theme removed, one added, the stance changed
    assert label_edits(shown, target, codebook) == {"themes": 2, "stance": 1, "relevance": 0}
    # a code the gold set is unsure of counts neither way
    assert label_edits(shown, target, codebook, ["policy_levers"])["themes"] == 1
    # marking an answer off-topic is one edit, whatever was proposed
    off = Labels(question="H1", relevant=False)
    assert label_edits(shown, off, codebook) == {"themes": 0, "stance": 0, "relevance": 1}
    # from blank labels (coding by hand) every label is an edit
    assert sum(label_edits(Labels(question="H1"), target, codebook).values()) == 3
    # Q10 asks for ideas: no stance to edit
    idea = Labels(question="Q10", themes=["prerequisites"])
    assert label_edits(Labels(question="Q10", stance="partly"), idea, codebook)["stance"] == 0


def test_simulate_on_rapid_insight_matches_the_project_it_wrote(tmp_path: Path) -> None:
    if not RAPID.is_dir():
        pytest.skip(f"gold set not found at {RAPID}")
    project = tmp_path / "simulated.db"
    out = tmp_path / "effort.json"
    limit, every = 40, 20
    result = CliRunner().invoke(
        cli,
        [
            "eval", "simulate", "--codebook", str(RAPID / "codebook.yaml"),
            "--items", str(RAPID / "items.jsonl"), "--limit", str(limit),
            "--retrain-every", str(every), "--seed", "3", "--project", str(project),
            "--json-file", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Reviewer effort per 100 answers (40 answers, 1 retrain(s))" in result.output
    figures = json.loads(out.read_text())
    assert figures["n_items"] == limit and figures["retrains"] == limit // every - 1
    policies = figures["policies"]
    assert {effort["responses"] for effort in policies.values()} == {limit}

    codebook, items = load_gold(None, codebook=RAPID / "codebook.yaml", items=RAPID / "items.jsonl")
    by_id = {item.id: item for item in items}
    with Store(project) as store:
        decisions = store.db.execute(
            "select response_id, action, proposal_id from decisions order by id"
        ).fetchall()
        assert len(decisions) == limit and len({d[0] for d in decisions}) == limit
        # Recount the edits from what the project holds: each decision's proposal (the
        # one on screen) against the gold labels it recorded.
        edits = accepted = hand = blank = 0
        for response_id, action, proposal_id in decisions:
            stored = store.proposal(proposal_id)
            assert stored.proposal is not None
            item = by_id[response_id]
            counted = sum(
                label_edits(
                    Labels.from_proposal(stored.proposal), gold_target(item), codebook,
                    item.uncertain_labels,
                ).values()
            )  # fmt: skip
            edits += counted
            accepted += counted == 0
            assert action == "correct" or counted == 0
            by_hand = sum(
                label_edits(Labels(question=item.question), gold_target(item), codebook,
                            item.uncertain_labels).values()
            )  # fmt: skip
            hand += by_hand
            blank += by_hand == 0
        models = store.db.execute("select count(*) from models").fetchone()[0]
    retrained = policies["retrained"]
    assert retrained["label_edits"] == edits and retrained["accepted_unchanged"] == accepted
    assert policies["no_model"]["label_edits"] == hand
    assert policies["no_model"]["accepted_unchanged"] == blank
    assert models == figures["retrains"]
    assert retrained["per_100"]["label_edits"] == round(100 * edits / limit, 1)
    # Models help: the zero-shot proposals need fewer edits than coding by hand.
    assert policies["zero_shot"]["label_edits"] < policies["no_model"]["label_edits"]


def test_simulate_refuses_an_existing_project(tmp_path: Path) -> None:
    if not RAPID.is_dir():
        pytest.skip(f"gold set not found at {RAPID}")
    project = tmp_path / "taken.db"
    project.write_bytes(b"")
    result = CliRunner().invoke(
        cli,
        [
            "eval", "simulate", "--codebook", str(RAPID / "codebook.yaml"),
            "--items", str(RAPID / "items.jsonl"), "--limit", "5", "--project", str(project),
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "already exists" in result.output
