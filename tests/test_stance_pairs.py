"""The stance cross-encoder (issue 14): (question, answer) pairs, training, export, proposing.

The pair encoding needs only the tokenizer; everything else needs the optional ``finetune``
extra (JAX, optax) and is skipped cleanly without it. Training runs a few steps on 40
answers of the rapid-insight dev set (which carry stances under H1-H9).
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coder.codebook import load_codebook
from coder.embedded.training import LabelledExample
from coder.store import Store
from tests.conftest import shared_path
from tests.test_finetune import items_file, small_config

needs_jax = pytest.mark.skipif(
    find_spec("jax") is None or find_spec("optax") is None,
    reason="the 'finetune' extra (jax, optax) is not installed",
)


def rapid_codebook() -> Any:
    return load_codebook(shared_path("gold", "rapid_insight_dev", "codebook.yaml"))


def test_pair_encoding_puts_the_answer_in_segment_one() -> None:
    from coder.embedded.finetune_data import encode_labels, load_tokenizer

    examples = [LabelledExample(text="Yes, it should be banned.", stance="pro")]
    vocabulary = {"themes": [], "stance": ["con", "pro"], "relevance": []}
    tokenizer = load_tokenizer(64)
    single = encode_labels(examples, vocabulary, tokenizer)
    paired = encode_labels(examples, vocabulary, tokenizer, ["Homeschooling should be banned"])
    assert single.type_ids is None
    assert paired.type_ids is not None
    ids, types = paired.ids[0], paired.type_ids[0]
    question = tokenizer.encode("Homeschooling should be banned").ids  # [CLS] q [SEP]
    answer = single.ids[0][1:]  # the answer's tokens and its [SEP]
    assert list(ids) == list(question) + list(answer)
    assert list(types) == [0] * len(question) + [1] * len(answer)
    assert paired.stance[0] == 1


def test_question_texts_read_the_codebook() -> None:
    from coder.embedded.stance_pairs import question_texts

    codebook = rapid_codebook()
    first = codebook.questions[0]
    assert question_texts([first.id, None, "unknown"], codebook) == [
        codebook.question_text(first.id),
        "",
        codebook.question_text("unknown") or "unknown",
    ]


@needs_jax
def test_jax_pair_forward_matches_onnxruntime() -> None:
    from coder.embedded import finetune_model as model
    from coder.embedded.encoder import MiniLMEncoder
    from coder.embedded.finetune_graph import float_onnx_bytes, load_float_graph
    from coder.embedded.stance_pairs import pair_vectors

    firsts = ["Homeschooling should be banned", "Homeschooling should be banned"]
    answers = ["Parents know their children best.", "Children need to meet other children"]
    graph = load_float_graph()
    encoder = MiniLMEncoder.from_onnx_bytes(float_onnx_bytes(graph), name="float")
    onnx_vectors = pair_vectors(encoder, firsts, answers)
    encodings = encoder.tokenizer.encode_batch(list(zip(firsts, answers, strict=True)))
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((2, width), np.int32)
    types = np.zeros_like(ids)
    mask = np.zeros((2, width), np.float32)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        types[row, : len(encoding.ids)] = encoding.type_ids
        mask[row, : len(encoding.ids)] = 1
    hidden = model.embed(graph.params, ids, types)
    jax_vectors = np.asarray(model.pool(model.run_layers(graph.params, hidden, mask, 0, 6), mask))
    assert np.all((jax_vectors * onnx_vectors).sum(1) > 0.999)
    # Segment ids matter: the same tokens as one segment give other vectors.
    flat = model.embed(graph.params, ids)
    one_segment = np.asarray(model.pool(model.run_layers(graph.params, flat, mask, 0, 6), mask))
    assert np.all((one_segment * onnx_vectors).sum(1) < 0.9999)


@pytest.fixture(scope="module")
def pair_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One small cross-encoder run on 40 rapid-insight answers."""
    folder = tmp_path_factory.mktemp("pairs")
    return _trained_pairs(lambda: items_file(folder), folder, epochs=2)


def _trained_pairs(items: Any, folder: Path, **config: Any) -> tuple[Any, Any]:
    """(examples, cross-encoder) trained on the gold file ``items()`` writes (skips without
    the 'finetune' extra)."""
    if find_spec("jax") is None or find_spec("optax") is None:
        pytest.skip("the 'finetune' extra is not installed")
    from coder.embedded.stance_pairs_train import train_stance_pairs
    from coder.embedded.training import examples_from_gold_file

    examples = examples_from_gold_file(items())
    settings = small_config(max_tokens=64, **config)
    return examples, train_stance_pairs(examples, rapid_codebook(), settings, folder / "ckpt")


@pytest.mark.slow
@needs_jax
def test_cross_encoder_trains_exports_and_round_trips(pair_model: Any) -> None:
    from coder.embedded.stance_pairs import PAIR_PREFIX, PairStanceModel, question_texts

    examples, model = pair_model
    codebook = rapid_codebook()
    assert model is not None and model.name.startswith(PAIR_PREFIX)
    assert set(model.classes) <= set(codebook.stance_ids) and len(model.classes) >= 2
    metrics = model.record["metrics"]
    # The exported graph computes what the JAX model computed.
    assert metrics["onnx_float_cosine"]["mean"] > 0.999
    assert metrics["steps"] > 0 and metrics["vocabulary_sizes"]["themes"] == 0
    assert metrics["holdout_accuracy"] is not None and metrics["n_holdout_scored"] >= 2
    # Three questions (H1-H3): a seeded random share of the answers is held back.
    assert metrics["holdout"]["by"] == "random" and not model.held_questions
    assert metrics["n_holdout"] == metrics["n_holdout_scored"] == len(model.held_examples)
    assert sum(metrics["stance_counts"].values()) + metrics["n_codebook_rows"] == (
        metrics["n_examples"]
    )
    assert model.record["params"]["pairs"] is True
    assert model.record["params"]["trainable_layers"] == 3
    texts = [e.text for e in examples[:6]]
    firsts = question_texts([e.question for e in examples[:6]], codebook)
    probabilities = model.probabilities(firsts, texts)
    assert probabilities.shape == (6, len(model.classes))
    assert np.allclose(probabilities.sum(1), 1.0)
    # Stored as ONNX bytes plus JSON (the head), it gives the same probabilities.
    info = {
        "name": model.name,
        "sha256": model.sha256,
        "quantized": model.quantized,
        "params": {**model.record["params"], "head": model.head_record()},
    }
    again = PairStanceModel.from_stored(model.onnx_bytes, info)
    assert np.allclose(again.probabilities(firsts, texts), probabilities, atol=1e-5)


@pytest.mark.slow
@needs_jax
def test_the_gate_decides_and_a_pairs_state_proposes_with_the_stored_model(
    pair_model: Any, tmp_path: Path
) -> None:
    from coder.embedded import stance_pairs
    from coder.embedded.classifier import LocalClassifier
    from coder.embedded.stance_pairs import question_texts, save_pair_model
    from eval.gold import read_items

    examples, model = pair_model
    codebook = rapid_codebook()
    db = tmp_path / "project.db"
    with Store(db) as store:
        store.save_codebook(codebook)
        save_pair_model(store, model, base="test")
        responses = [i.to_response() for i in read_items(items_file(tmp_path, 50))[40:]]
        store.add_responses(responses)
        classifier = LocalClassifier(store, use_stored_model=False)
        classifier.stance_pairs = model
        state = classifier.fit(examples, codebook)
        report = state.metrics["stance_pairs"]
        assert report["model"] == model.name and isinstance(report["chosen"], bool)
        assert report["n_held_back"] == len(model.held_examples)
        assert state.params["stance_pairs"] == model.name
        assert state.fields["stance"] == ("pairs" if report["chosen"] else state.fields["stance"])
        # Force the pair path and store the state: a new process reads the model back.
        state.fields["stance"] = "pairs"
        classifier.save(store)
    stance_pairs._loaded.clear()
    with Store(db) as store:
        loaded = LocalClassifier.load(store)
        assert loaded.stance_pairs is None
        results = loaded.propose(responses, codebook)
        asked = [r for r in responses if codebook.has_stance(r.question)]
        probabilities = model.probabilities(
            question_texts([r.question for r in asked], codebook), [r.text for r in asked]
        )
        expected = {
            r.id: model.classes[i] for r, i in zip(asked, probabilities.argmax(1), strict=True)
        }
        got = {r.response_id: r.proposal.stance for r in results if r.response_id in expected}
        # The respondent's own opening still wins for a value reviewers gave too rarely.
        agree = sum(got[key] == value for key, value in expected.items())
        assert agree >= len(expected) - 2 and len(expected) >= 5


# --- which answers the cross-encoder holds back (whole questions when it can) ------------


def motions(sizes: list[int]) -> list[str]:
    """One question id per answer: ``sizes[k]`` answers to question ``m<k>``, interleaved
    (answers arrive mixed, as in a project)."""
    questions = [f"m{k:02d}" for k, size in enumerate(sizes) for _ in range(size)]
    return [questions[i] for i in np.random.default_rng(7).permutation(len(questions))]


def test_whole_questions_are_held_back_near_the_share_and_seeded() -> None:
    from coder.embedded.stance_pairs_holdout import stance_holdout

    # ArgKP's training split: 24 motions of about 200-250 answers each.
    sizes = [int(size) for size in np.random.default_rng(1).integers(196, 248, 24)]
    questions = motions(sizes)
    chosen_sets = set()
    for seed in range(8):
        holdout = stance_holdout(questions, 0.1, seed)
        assert holdout.by == "questions" and holdout.questions
        held = {questions[i] for i in holdout.rows}
        # Never split: every answer of a held-back question is held back, no other answer.
        assert held == set(holdout.questions)
        assert sorted(holdout.rows) == [i for i, q in enumerate(questions) if q in held]
        share = len(holdout.rows) / len(questions)
        assert 0.07 <= share <= 0.13, share
        assert holdout.record(len(questions))["share"] == round(share, 4)
        # Seeded: the same seed chooses the same questions whatever order answers came in.
        again = stance_holdout(list(reversed(questions)), 0.1, seed)
        assert set(again.questions) == held
        chosen_sets.add(frozenset(held))
    assert len(chosen_sets) > 4  # different seeds hold back different motions


def test_a_single_question_keeps_the_seeded_random_split() -> None:
    from coder.embedded.stance_pairs_holdout import random_rows, stance_holdout

    holdout = stance_holdout(["H1"] * 200, 0.1, 3)
    assert holdout.by == "random" and holdout.questions == []
    assert len(holdout.rows) == 20
    # The very rows FineTuneRun holds back when given no holdout (its seeded permutation).
    expected = np.sort(np.random.default_rng(3).permutation(200)[:20])
    assert np.array_equal(holdout.rows, expected)
    assert np.array_equal(random_rows(200, 0.1, 3), expected)


def test_few_or_lopsided_questions_keep_the_random_split() -> None:
    from coder.embedded.stance_pairs_holdout import MIN_QUESTIONS, stance_holdout

    # Three questions (fewer than MIN_QUESTIONS): random, questions split across both parts.
    three = motions([100, 100, 100])
    assert MIN_QUESTIONS == 4 and stance_holdout(three, 0.1, 0).by == "random"
    # NHS-like: six questions, but no choice of them comes within 2x of 10% of the answers.
    nhs = motions([1138, 901, 648, 604, 113, 9])
    for seed in range(5):
        holdout = stance_holdout(nhs, 0.1, seed)
        share = len(holdout.rows) / len(nhs)
        assert holdout.by in {"random", "questions"}
        assert 0.05 <= share <= 0.2
        if holdout.by == "random":
            assert abs(share - 0.1) < 0.001
    # Too few answers to hold any back.
    assert stance_holdout(motions([4, 4, 4, 4]), 0.1, 0).by == "none"


def test_the_pair_gate_needs_a_margin_beyond_noise() -> None:
    from coder.embedded.stance_pairs_gate import PAIR_MIN_GAIN, pairs_win

    rng = np.random.default_rng(0)
    current = (rng.random(4000) < 0.7).astype(float)
    better = current.copy()
    better[np.flatnonzero(current == 0)[:200]] = 1.0  # +5 points, consistently
    won, figures = pairs_win(better, current)
    assert won and figures["gain"] == 0.05 and figures["standard_error"] > 0
    # A gain smaller than PAIR_MIN_GAIN is not worth half the proposal speed ...
    slight = current.copy()
    slight[np.flatnonzero(current == 0)[: int(PAIR_MIN_GAIN * 4000) - 4]] = 1.0
    assert not pairs_win(slight, current)[0]
    # ... and a gain within the noise of the paired differences is not taken either.
    # 100 answers: the cross-encoder right on 20 the current model missed, wrong on 15 it
    # got: +5 points, but about 0.85 standard errors.
    baseline = np.array([0.0] * 20 + [1.0] * 15 + [1.0] * 65)
    noisy = np.array([1.0] * 20 + [0.0] * 15 + [1.0] * 65)
    won, figures = pairs_win(noisy, baseline)
    assert figures["gain"] == 0.05 and not won
    assert figures["gain"] < 1.0 * figures["standard_error"]
    # NHS's held-back figures (340 answers, +2.65 points at about one standard error), which
    # the test answers then contradicted, no longer choose the cross-encoder.
    baseline = np.array([0.0] * 42 + [1.0] * 33 + [1.0] * 265)
    nhs_like = np.array([1.0] * 42 + [0.0] * 33 + [1.0] * 265)
    won, figures = pairs_win(nhs_like, baseline)
    assert figures["gain"] == 0.0265 and 1.0 < figures["gain"] / figures["standard_error"] < 1.1
    assert not won
    assert pairs_win(current[:1], current[:1]) == (False, {})


@pytest.fixture(scope="module")
def grouped_pair_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A few steps of a cross-encoder on 6 answers to each of H1-H9 (nine questions)."""
    import json

    folder = tmp_path_factory.mktemp("grouped")

    def six_per_question() -> Path:
        lines = shared_path("gold", "rapid_insight_dev", "items.jsonl").read_text("utf-8")
        taken: dict[str, int] = {}
        keep = []
        for line in lines.splitlines():
            question = json.loads(line)["question"]
            if question != "Q10" and taken.get(question, 0) < 6:
                taken[question] = taken.get(question, 0) + 1
                keep.append(line)
        (folder / "items.jsonl").write_text("\n".join(keep) + "\n", encoding="utf-8")
        return folder / "items.jsonl"

    return _trained_pairs(six_per_question, folder, epochs=1, max_steps=3)


@pytest.mark.slow
@needs_jax
def test_pair_run_and_gate_hold_back_whole_questions(grouped_pair_model: Any) -> None:
    from coder.embedded.classifier import LocalClassifier
    from coder.embedded.stance_pairs_gate import gate_stance_pairs
    from coder.embedded.stance_pairs_train import stance_examples

    examples, model = grouped_pair_model
    codebook = rapid_codebook()
    assert model is not None
    metrics = model.record["metrics"]
    assert metrics["holdout"]["by"] == "questions"
    held = set(model.held_questions)
    assert held and held == set(metrics["holdout"]["questions"])
    scored = stance_examples(examples, codebook)
    # Every stance answer of a held-back question, and only those, was held back ...
    assert sorted(e.text for e in model.held_examples) == sorted(
        e.text for e in scored if e.question in held
    )
    # ... from the fine-tune itself: neither trained on nor used for early stopping, which
    # holds back a seeded 10% of the other answers.
    unseen = len(model.held_examples)
    assert metrics["n_holdout_scored"] == unseen
    others = len(scored) - unseen
    assert metrics["n_holdout"] == round(0.1 * others) and metrics["n_holdout"] > 0
    assert metrics["n_train"] == metrics["n_examples"] - metrics["n_holdout"] - unseen
    # The gate refits the current model without any answer to the held-back questions.
    classifier = LocalClassifier(None, use_stored_model=False)
    classifier.stance_pairs = model
    classifier.fit(examples, codebook)
    seen: list[Any] = []

    def fit_without(sibling: LocalClassifier, train: Any) -> None:
        seen.extend(train)
        sibling.fit(train, codebook)

    report = gate_stance_pairs(classifier, examples, codebook, fit_without)
    assert report["held_back_by"] == "questions"
    assert report["held_back_questions"] == sorted(held)
    assert seen and not {e.question for e in seen} & held
    assert report["n_held_back"] == len(model.held_examples)
    assert {"gain", "standard_error"} <= set(report) and isinstance(report["chosen"], bool)
