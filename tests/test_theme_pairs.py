"""The theme cross-encoder (issue 14): (code text, answer) pairs, re-ranking, gate, CLI.

Building pairs and re-ranking arithmetic need only numpy; training needs the optional
``finetune`` extra (JAX, optax) and is skipped cleanly without it. Training runs a few steps
on the rapid-insight dev set; the small project is tests/codebooks/virtual_wards (38
answers), where the cross-encoder must decline, not crash.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.codebook import load_codebook
from coder.embedded.theme_pairs import (
    MATCH,
    OTHER,
    RERANK,
    RERANK_DECIDE,
    RERANK_TOP_K,
    SMALL_CANDIDATES,
    STATE_KEY,
    blend,
    code_text,
    rerank_rows,
)
from coder.embedded.theme_pairs_train import (
    HARD_NEGATIVES,
    RANDOM_NEGATIVES,
    pair_rows,
    train_theme_pairs,
)
from coder.embedded.training import LabelledExample, examples_from_gold_file
from coder.store import Store
from tests.conftest import shared_path

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "tests" / "codebooks" / "virtual_wards"

needs_jax = pytest.mark.skipif(
    find_spec("jax") is None or find_spec("optax") is None,
    reason="the 'finetune' extra (jax, optax) is not installed",
)


def argkp_like(tmp_path: Path) -> Any:
    """A small codebook shaped like ArgKP: key points per motion, each of a stance side."""
    lines = [
        "name: kp",
        "questions:",
        "  - {id: m1, text: We should ban cars}",
        "  - {id: m2, text: We should ban planes}",
        "stance: {values: [{id: pro, label: pro}, {id: con, label: con}]}",
        "themes:",
    ]
    for motion in ("m1", "m2"):
        for side in ("pro", "con"):
            for k in range(4):
                lines.append(
                    f"  - {{id: {motion}_{side}_{k}, label: Point {k} {side} {motion}, "
                    f"definition: 'Key point {k} ({side}) of {motion}', category: {side}, "
                    f"questions: [{motion}]}}"
                )
    path = tmp_path / "codebook.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_codebook(path)


def test_code_text_is_the_name_and_definition() -> None:
    class Theme:
        def __init__(self, label: str, definition: str) -> None:
            self.id, self.label, self.definition = "c", label, definition

    assert code_text(Theme("Staffing", "Not enough nurses")) == "Staffing: Not enough nurses"
    # ArgKP's definitions repeat the key point: the definition alone, not the text twice.
    kp = Theme("Cars pollute", "Key point (pro the motion): Cars pollute")
    assert code_text(kp) == "Key point (pro the motion): Cars pollute"
    assert code_text(Theme("Staffing", "")) == "Staffing"


def test_pairs_are_gold_codes_and_hard_negatives_of_the_same_side(tmp_path: Path) -> None:
    codebook = argkp_like(tmp_path)
    ids = codebook.theme_ids
    example = LabelledExample(
        text="cars kill people", question="m1", themes=["m1_pro_0"],
        uncertain_themes=["m1_pro_1"], stance="pro",
    )  # fmt: skip
    # A ranker that puts m1_pro_3 nearest, then m1_pro_2, con points even nearer (ignored).
    nearness = {"m1_pro_3": 0.9, "m1_pro_2": 0.8, "m1_con_0": 0.99, "m1_pro_1": 0.95}

    def ranker(answers: Any, codes: Any) -> np.ndarray:
        return np.array([[nearness.get(code, 0.0) for code in ids] for _ in answers])

    built = pair_rows([example], codebook, ranker, seed=0)
    labels = {first: row.stance for first, row in zip(built.firsts, built.rows, strict=True)}
    texts = {code: code_text(codebook.themes[i]) for i, code in enumerate(ids)}
    assert labels[texts["m1_pro_0"]] == MATCH
    negatives = {code for code, text in texts.items() if labels.get(text) == OTHER}
    # Only this motion's pro points, never the uncertain one; the nearest are all kept
    # (3 hard + 1 random covers the two left).
    assert negatives == {"m1_pro_2", "m1_pro_3"}
    assert all(row.text == "cars kill people" for row in built.rows)
    assert built.answer == [0] * len(built.rows)
    # With more candidates: the hard ones are the nearest, the random one is seeded.
    many = LabelledExample(text="planes are loud", question="m2", themes=["m2_con_0"])
    near = {f"m2_{side}_{k}": 0.1 * k + (0.5 if side == "pro" else 0) for side in ("pro", "con")
            for k in range(4)}  # fmt: skip

    def ranker2(answers: Any, codes: Any) -> np.ndarray:
        return np.array([[near.get(code, 0.0) for code in ids] for _ in answers])

    first = pair_rows([many], codebook, ranker2, seed=1)
    assert len(first.rows) == 1 + HARD_NEGATIVES + RANDOM_NEGATIVES
    # No stance: both sides may be negatives, and the three nearest are the pro points.
    hard = first.firsts[1 : 1 + HARD_NEGATIVES]
    assert hard == [texts["m2_pro_3"], texts["m2_pro_2"], texts["m2_pro_1"]]
    assert pair_rows([many], codebook, ranker2, seed=1).firsts == first.firsts


def test_rerank_rows_take_the_top_k_or_every_candidate_of_a_small_set() -> None:
    probabilities = np.linspace(0, 1, 30)[None, :].repeat(2, axis=0)
    candidates = [list(range(SMALL_CANDIDATES)), list(range(30))]
    rows = rerank_rows(probabilities, candidates)
    assert rows[0] == list(range(SMALL_CANDIDATES))
    assert rows[1] == list(range(29, 29 - RERANK_TOP_K, -1))


def test_the_blend_is_in_log_odds() -> None:
    current, match = np.array([0.2, 0.9]), np.array([0.8, 0.5])
    assert np.allclose(blend(current, match, 1.0), match)
    assert np.allclose(blend(current, match, 0.0), current)
    assert np.allclose(blend(current, match, 0.5), [0.5, 0.75])


def test_too_few_labels_decline_without_training() -> None:
    examples = examples_from_gold_file(SMALL / "items.jsonl")
    codebook = load_codebook(SMALL / "codebook.yaml")
    assert len(examples) < 50
    # Returns before any fine-tuning (and without the extra installed).
    assert train_theme_pairs(examples, codebook) is None


def test_theme_pairs_need_fine_tune(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    Store(db).close()
    result = CliRunner().invoke(cli, ["train", "--db", str(db), "--theme-pairs"])
    assert result.exit_code == 2 and "--theme-pairs" in result.output
    result = CliRunner().invoke(
        cli, ["eval", str(SMALL), "--theme-pairs", "--no-store", "--no-baselines"]
    )
    assert result.exit_code == 1 and "--theme-pairs goes with --fine-tune" in result.output


@pytest.mark.slow
@needs_jax
def test_small_project_declines_cleanly_from_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "project.db"
    runner = CliRunner()
    base = ["--db", str(db)]
    result = runner.invoke(cli, ["codebook", "add", str(SMALL / "codebook.yaml"), *base])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["import", str(SMALL / "items.jsonl"), *base])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        cli,
        ["train", *base, "--from-file", str(SMALL / "items.jsonl"), "--fine-tune",
         "--theme-pairs", "--epochs", "1", "--trainable-layers", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Theme cross-encoder: not trained" in result.output
    assert "Traceback" not in result.output and "Re-proposed" in result.output
    with Store(db) as store:
        # Only the sentence encoder was stored; the trained state names no cross-encoder.
        assert [row["name"] for row in store.encoders()][0].startswith("minilm-l6-ft-")
        assert len(store.encoders()) == 1
        assert not (tmp_path / "project.db.finetune-themes").exists()


@pytest.fixture(scope="module")
def theme_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A few steps of a theme cross-encoder on the rapid-insight dev answers (H1-H9, Q10)."""
    if find_spec("jax") is None or find_spec("optax") is None:
        pytest.skip("the 'finetune' extra is not installed")
    from tests.test_finetune import small_config

    folder = tmp_path_factory.mktemp("themes")
    examples = examples_from_gold_file(shared_path("gold", "rapid_insight_dev", "items.jsonl"))
    codebook = load_codebook(shared_path("gold", "rapid_insight_dev", "codebook.yaml"))
    settings = small_config(max_tokens=48, epochs=1, max_steps=3)
    model = train_theme_pairs(examples, codebook, settings, folder / "ckpt", min_answers=20)
    return examples, codebook, model


@pytest.mark.slow
@needs_jax
def test_cross_encoder_trains_on_pairs_and_holds_back_whole_questions(theme_model: Any) -> None:
    from coder.embedded.stance_pairs import PAIR_PREFIX
    from coder.embedded.theme_pairs import match_probabilities

    examples, codebook, model = theme_model
    assert model is not None and model.name.startswith(PAIR_PREFIX)
    assert model.classes == [MATCH, OTHER]
    metrics = model.record["metrics"]
    assert metrics["kind"] == "themes" and model.record["params"]["kind"] == "themes"
    assert metrics["steps"] == 3 and metrics["complete"] is False
    assert 0 < metrics["n_matches"] < metrics["n_pairs"]
    assert metrics["onnx_float_cosine"]["mean"] > 0.999
    # Ten questions: whole questions are held back, never trained on.
    held = set(model.held_questions)
    assert metrics["holdout"]["by"] == "questions" and held
    assert {e.question for e in model.held_examples} == held
    # The held-back answers' pairs are neither trained on nor used for early stopping.
    assert metrics["n_train"] + metrics["n_holdout"] < metrics["n_pairs"]
    texts = [e.text for e in examples[:5]]
    firsts = [code_text(codebook.themes[0])] * 5
    probabilities = match_probabilities(model, firsts, texts)
    assert probabilities.shape == (5,) and np.all((probabilities > 0) & (probabilities < 1))


@pytest.mark.slow
@needs_jax
def test_gate_reranks_and_the_stored_model_loads_without_jax(
    theme_model: Any, tmp_path: Path
) -> None:
    from coder.embedded import stance_pairs
    from coder.embedded.classifier import LocalClassifier
    from coder.embedded.theme_pairs_project import save_theme_pair_model
    from eval.gold import read_items

    examples, codebook, model = theme_model
    db = tmp_path / "project.db"
    responses = [
        item.to_response()
        for item in read_items(shared_path("gold", "rapid_insight_dev", "items.jsonl"))[:30]
    ]
    with Store(db) as store:
        store.save_codebook(codebook)
        save_theme_pair_model(store, model)
        store.add_responses(responses)
        classifier = LocalClassifier(store, use_stored_model=False)
        classifier.prepare(responses, codebook)  # the same question prior as below
        classifier.theme_pairs = model
        # Without the field gate (its cross-validation is slow); the pair gate still runs.
        state = classifier.fit(examples, codebook, gate=False)
        report = state.metrics["theme_pairs"]
        assert report["model"] == model.name and isinstance(report["chosen"], bool)
        assert report["n_held_back"] == len(model.held_examples)
        assert report["held_back_by"] == "questions"
        assert {"current", "rerank_0.5", "rerank_1.0", "gain", "standard_error"} <= set(report)
        assert state.params[STATE_KEY] == model.name
        chosen = RERANK_DECIDE if report.get("decides") else RERANK
        assert state.fields.get(STATE_KEY) == (chosen if report["chosen"] else None)
        unranked = classifier.code_scores(responses, codebook)
        # Force re-ranking and store the state: a new classifier reads the model back.
        state.fields[STATE_KEY] = RERANK
        ranked = classifier.code_scores(responses, codebook)
        assert [set(row) for row in ranked] == [set(row) for row in unranked]
        assert any(ranked[i] != unranked[i] for i in range(len(ranked)))
        classifier.save(store)
    stance_pairs._loaded.clear()
    with Store(db) as store:
        loaded = LocalClassifier.load(store)
        loaded.prepare(responses, codebook)
        assert loaded.theme_pairs is None
        again = loaded.code_scores(responses, codebook)
        for row, expected in zip(again, ranked, strict=True):
            assert row.keys() == expected.keys()
            assert np.allclose(list(row.values()), list(expected.values()), atol=1e-4)
        results = loaded.propose(responses, codebook)
        assert all(result.ok for result in results)
    # The stored row is ONNX bytes plus JSON (the head, what it was trained on) ...
    with Store(db) as store:
        onnx_bytes, info = store.load_encoder(model.name) or (b"", {})
    params = info["params"] if isinstance(info["params"], dict) else json.loads(info["params"])
    assert onnx_bytes == model.onnx_bytes and params["kind"] == "themes"
    assert params["head"]["classes"] == [MATCH, OTHER]
    # ... and a process that never imports JAX or torch scores with it.
    script = f"""
import sys, json
from coder.store import Store
from coder.embedded.stance_pairs import load_pair_model
from coder.embedded.theme_pairs import match_probabilities
with Store({str(db)!r}) as store:
    model = load_pair_model(store, {model.name!r})
    scores = match_probabilities(model, ['a', 'b'], ['x', 'y']).tolist()
assert not {{'jax', 'optax', 'torch'}} & set(sys.modules)
print(json.dumps(scores))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert np.allclose(
        json.loads(done.stdout), match_probabilities_here(model), atol=1e-5
    )


def match_probabilities_here(model: Any) -> list[float]:
    from coder.embedded.theme_pairs import match_probabilities

    return match_probabilities(model, ["a", "b"], ["x", "y"]).tolist()
