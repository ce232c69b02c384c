"""Fine-tuning the encoder (``coder train --fine-tune``): JAX forward, training, export, resume.

Needs the optional ``finetune`` extra (JAX, optax); every test that uses it is skipped
cleanly without it. The training tests fine-tune a few steps on 40 answers of the
rapid-insight dev set with short inputs, so each run compiles only two batch shapes.
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
from coder.errors import BackendError
from coder.store import Store
from tests.conftest import shared_path

needs_jax = pytest.mark.skipif(
    find_spec("jax") is None or find_spec("optax") is None,
    reason="the 'finetune' extra (jax, optax) is not installed",
)


def small_config(**overrides: Any) -> Any:
    from coder.embedded.finetune import FineTuneConfig

    settings: dict[str, Any] = {
        "seed": 0,
        "epochs": 2,
        "trainable_layers": 1,
        "max_tokens": 32,
        "batch_size": 8,
        "encoder_learning_rate": 5e-4,
    }
    settings.update(overrides)
    return FineTuneConfig(**settings)


def items_file(tmp_path: Path, count: int = 40) -> Path:
    source = shared_path("gold", "rapid_insight_dev", "items.jsonl")
    lines = source.read_text(encoding="utf-8").splitlines()[:count]
    target = tmp_path / "items.jsonl"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One small fine-tuning run (uninterrupted), shared by the tests that inspect it."""
    from coder.embedded.finetune import fine_tune
    from coder.embedded.training import examples_from_gold_file

    if find_spec("jax") is None:
        pytest.skip("the 'finetune' extra is not installed")
    folder = tmp_path_factory.mktemp("tuned")
    examples = examples_from_gold_file(items_file(folder))
    return examples, fine_tune(examples, small_config(), folder / "checkpoints")


@needs_jax
def test_jax_forward_matches_onnxruntime() -> None:
    import jax
    import onnxruntime as ort

    from coder.embedded.encoder import MiniLMEncoder
    from coder.embedded.finetune_graph import float_onnx_bytes, load_float_graph
    from coder.embedded.finetune_model import sentence_vectors

    texts = ["The staff were kind.", "Waited four hours with no news at all", "ok"]
    graph = load_float_graph()
    shipped = MiniLMEncoder(quantize=False)
    encodings = shipped.tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(texts), width), np.int64)
    mask = np.zeros_like(ids)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
    session = ort.InferenceSession(float_onnx_bytes(graph), providers=["CPUExecutionProvider"])
    hidden = session.run(
        None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    )[0]
    pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    # The float graph computes what the shipped one does ...
    assert np.all((pooled * shipped.encode(texts)).sum(1) > 0.9999)
    # ... and the JAX forward pass computes what the float graph does.
    jax_vectors = np.asarray(sentence_vectors(graph.params, ids.astype(np.int32), mask))
    assert np.all((jax_vectors * pooled).sum(1) > 0.999)
    assert jax.devices()[0].platform == "cpu"


def test_fine_tune_without_the_extra_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax now raises ImportError
    db = tmp_path / "p.db"
    Store(db).close()
    result = CliRunner().invoke(cli, ["train", "--db", str(db), "--fine-tune"])
    assert result.exit_code == 1
    assert "pip install 'coder[finetune]'" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["train", "--db", str(db), "--epochs", "2"])
    assert result.exit_code == 2 and "--fine-tune" in result.output
    result = CliRunner().invoke(cli, ["train", "--db", str(db), "--stance-pairs"])
    assert result.exit_code == 2 and "--stance-pairs" in result.output


def test_rows_kept_unseen_are_part_of_the_run_identity() -> None:
    from coder.embedded.finetune_data import data_hash
    from coder.embedded.training import LabelledExample

    examples = [LabelledExample(text=f"answer {i}", stance="pro") for i in range(30)]
    config = small_config()
    plain = data_hash(examples, config)
    # None kept unseen: the identity of runs (and their checkpoints) is what it was.
    assert data_hash(examples, config, None, None) == plain
    assert data_hash(examples, config, None, np.array([], np.int64)) == plain
    first = data_hash(examples, config, None, np.array([3, 1, 2]))
    assert first != plain
    assert data_hash(examples, config, None, np.array([1, 2, 3])) == first
    assert data_hash(examples, config, None, np.array([1, 2, 4])) != first


@needs_jax
def test_rows_kept_unseen_outside_the_examples_are_refused() -> None:
    from coder.embedded.finetune import fine_tune
    from coder.embedded.training import LabelledExample
    from coder.errors import CoderError

    examples = [LabelledExample(text=f"answer {i}", stance="pro") for i in range(30)]
    with pytest.raises(CoderError, match="among the 30 labelled examples"):
        fine_tune(examples, small_config(), unseen_rows=np.array([2, 30]))
    examples[4] = LabelledExample(text="  ", stance="pro")
    with pytest.raises(CoderError, match="every example to have text"):
        fine_tune(examples, small_config(), unseen_rows=np.array([2]))


@pytest.mark.slow
@needs_jax
def test_training_changes_the_weights_and_exports_a_working_onnx(tuned: Any, tmp_path: Path) -> None:
    from coder.embedded.finetune_graph import load_float_graph

    examples, result = tuned
    base = load_float_graph().params
    assert result.complete and result.metrics["steps"] == result.metrics["total_steps"]
    assert result.name.startswith("minilm-l6-ft-") and result.name[13:] == result.sha256[:12]
    changed = [name for name, value in result.trained.items() if not np.array_equal(value, base[name])]
    assert changed and all(name.startswith("encoder.layer.5.") for name in result.trained)
    # The export is int8 where the vectors stay close to the float model's.
    assert result.quantized
    cosine = result.metrics["onnx_int8_frozen_layers_cosine"] or result.metrics["onnx_int8_cosine"]
    assert cosine["mean"] >= 0.98
    assert result.metrics["onnx_float_cosine"]["mean"] > 0.999
    # A colleague without JAX: onnxruntime alone encodes with the stored bytes.
    model = tmp_path / "encoder.onnx"
    model.write_bytes(result.onnx_bytes)
    script = (
        "import sys; sys.modules['jax'] = None; sys.modules['optax'] = None\n"
        "from pathlib import Path\n"
        "from coder.embedded.encoder import MiniLMEncoder\n"
        f"e = MiniLMEncoder.from_onnx_bytes(Path({str(model)!r}).read_bytes(), name='ft', "
        f"expected_sha256={result.sha256!r})\n"
        "v = e.encode(['The staff were kind.', 'Parking costs too much'])\n"
        "print(v.shape, round(float((v * v).sum()), 3), e.per_text)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "(2, 384) 2.0 True"
    with pytest.raises(BackendError, match="sha256"):
        from coder.embedded.encoder import MiniLMEncoder

        MiniLMEncoder.from_onnx_bytes(result.onnx_bytes + b"x", name="x", expected_sha256=result.sha256)


@pytest.mark.slow
@needs_jax
def test_resume_continues_from_the_checkpoint_and_matches_an_uninterrupted_run(
    tuned: Any, tmp_path: Path
) -> None:
    from coder.embedded.finetune import fine_tune

    examples, uninterrupted = tuned
    folder = tmp_path / "checkpoints"
    first = fine_tune(examples, small_config(max_steps=3), folder)
    assert not first.complete and first.metrics["steps"] == 3
    saved = json.loads((folder / "checkpoint.json").read_text())
    assert saved["step"] == 3 and not saved["done"]
    with np.load(folder / "params.npz", allow_pickle=False) as arrays:  # arrays, no pickle
        assert "head.themes.weight" in arrays.files
    resumed = fine_tune(examples, small_config(), folder)
    assert resumed.complete and resumed.metrics["resumed_from_step"] == 3
    # Same seed, same data: the interrupted-and-resumed run ends where the straight one did.
    for name, value in uninterrupted.trained.items():
        np.testing.assert_allclose(resumed.trained[name], value, atol=1e-6)
    assert resumed.name == uninterrupted.name
    # Another seed gives other weights; other settings do not resume this checkpoint.
    other = fine_tune(examples, small_config(seed=1, max_steps=1), folder)
    assert other.metrics["resumed_from_step"] == 0


@pytest.mark.slow
@needs_jax
@pytest.mark.parametrize("stance_pairs", [False, True], ids=["encoder", "with-stance-pairs"])
def test_project_stores_the_encoder_and_proposals_name_it(
    tmp_path: Path, stance_pairs: bool
) -> None:
    from coder.embedded import encoder as encoder_module
    from coder.embedded.classifier import LocalClassifier
    from coder.embedded.finetune_run import checkpoint_folder, fine_tune_project
    from eval.gold import read_items

    items = items_file(tmp_path)
    db = tmp_path / "project.db"
    with Store(db) as store:
        store.save_codebook(load_codebook(shared_path("gold", "rapid_insight_dev", "codebook.yaml")))
        more = read_items(shared_path("gold", "rapid_insight_dev", "items.jsonl"))[40:50]
        store.add_responses([item.to_response() for item in more])
        summary = fine_tune_project(
            store, from_file=items, config=small_config(epochs=1), stance_pairs=stance_pairs
        )
        name = summary.encoder.name
        assert checkpoint_folder(store) == tmp_path / "project.db.finetune"
        assert (checkpoint_folder(store) / "checkpoint.json").is_file()
        pairs = summary.stance_pairs
        if stance_pairs:
            # The answers carry stances: the stance cross-encoder is stored first, so the
            # project's latest encoder is still the sentence encoder.
            assert pairs is not None and pairs.name.startswith("minilm-l6-pair-")
            assert [row["name"] for row in store.encoders()] == [pairs.name, name]
            assert (tmp_path / "project.db.finetune-stance" / "checkpoint.json").is_file()
            assert summary.retrain.metrics["stance_pairs"]["model"] == pairs.name
        else:  # opt-in: without it, no second fine-tune and no second encoder
            assert pairs is None and "stance_pairs" not in summary.retrain.metrics
            assert [row["name"] for row in store.encoders()] == [name]
            assert not (tmp_path / "project.db.finetune-stance").exists()
        assert store.latest_encoder_name() == name
        assert summary.retrain.model_version.endswith("@" + name)
        proposals = store.current_proposals()
        assert len(proposals) == 10
        assert all(p.model_version == summary.retrain.model_version for p in proposals.values())
    # A new process (no loaded encoders) loads the model with the project's encoder.
    encoder_module._encoders.pop(name, None)
    with Store(db) as store:
        classifier = LocalClassifier.load(store)
        assert classifier.encoder.name == name and classifier.model.startswith(name)
        # A zero-shot classifier in this project uses it too.
        assert LocalClassifier(store, use_stored_model=False).encoder.name == name
        # A changed file is refused: the sha256 is checked on load.
        encoder_module._encoders.pop(name, None)
        stored, _ = store.load_encoder(name) or (b"", {})
        with store.db.conn:  # a swapped byte, as a tampered file would carry
            store.db.execute("update encoders set onnx = ?", [stored[:-1] + b"\x01"])
        with pytest.raises(BackendError, match="sha256"):
            _ = LocalClassifier.load(store).encoder
