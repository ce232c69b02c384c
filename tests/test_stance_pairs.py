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
    if find_spec("jax") is None or find_spec("optax") is None:
        pytest.skip("the 'finetune' extra is not installed")
    from coder.embedded.stance_pairs_train import train_stance_pairs
    from coder.embedded.training import examples_from_gold_file

    folder = tmp_path_factory.mktemp("pairs")
    examples = examples_from_gold_file(items_file(folder))
    config = small_config(max_tokens=64, epochs=2)
    return examples, train_stance_pairs(examples, rapid_codebook(), config, folder / "ckpt")


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
    from coder.embedded.finetune_run import save_pair_model
    from coder.embedded.stance_pairs import question_texts
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
