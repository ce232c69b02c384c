"""Trained local models are stored as JSON + numpy arrays; a pickle in a project never runs.

A project file travels by email, so the ``models`` table must not be a way to run code on
whoever opens it (issue 15, item 1). These tests train a real state, store it, load it and
compare proposals; and plant a crafted pickle whose ``__reduce__`` would create a marker
file, then run ``coder precode`` on the project.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from sklearn.base import BaseEstimator

from coder.cli import cli
from coder.embedded import state_io
from coder.embedded.classifier import LocalClassifier
from coder.embedded.models import TrainedState
from coder.embedded.training import LabelledExample, load_state, model_storage
from coder.errors import CoderError
from coder.store import Store
from schemas import Codebook, Question, Response, Theme

STAFF = [
    "Kind nurses",
    "The staff were rude",
    "Lovely friendly team",
    "Doctors were caring and kind",
    "Receptionist was unhelpful and rude",
    "Great nurses on the ward",
    "The nurses listened to me",
    "Staff never smiled",
    "A very caring midwife",
    "The porters were polite",
    "Nobody on the desk said hello",
    "Thoughtful and gentle nurses",
]
PARKING = [
    "Parking is expensive",
    "No spaces in the car park",
    "Parking charges too high",
    "Had to park miles away",
    "Car park full again",
    "Make parking free",
    "The parking machine was broken",
    "Parking fees are a rip off",
    "Too few disabled parking bays",
    "The car park is far from the entrance",
    "Pay and display costs too much",
    "Drove round for ages looking for a space",
]
NEW_TEXTS = [
    "The nurse was kind to me",
    "Parking costs a fortune",
    "n/a",
    "Rude receptionist and no parking spaces",
    "Nothing to add",
]


def codebook() -> Codebook:
    return Codebook(
        name="ward feedback",
        questions=[
            Question(id="good", text="What was good?"),
            Question(id="better", text="What could we do better?"),
        ],
        themes=[
            Theme(
                id="staff",
                label="Staff attitude",
                definition="How kind, caring, friendly or rude the staff were.",
                examples=["The nurses were lovely"],
            ),
            Theme(
                id="parking",
                label="Parking",
                definition="Car parking: cost, spaces, distance from the entrance.",
                examples=["Parking is too expensive"],
            ),
        ],
    )


def examples() -> list[LabelledExample]:
    rows = []
    for number, text in enumerate(STAFF):
        negative = any(word in text for word in ("rude", "unhelpful", "never", "Nobody"))
        rows.append(
            LabelledExample(
                id=f"s{number}",
                text=text,
                question="good" if not negative else "better",
                themes=["staff"],
                stance="does_not_resonate" if negative else "resonates",
            )
        )
    for number, text in enumerate(PARKING):
        rows.append(
            LabelledExample(
                id=f"p{number}",
                text=text,
                question="better",
                themes=["parking"],
                stance="does_not_resonate",
            )
        )
    off_topic = ["My cat is called Tom", "I like football", "The weather was sunny", "Buy shares"]
    for number, text in enumerate(off_topic):
        rows.append(LabelledExample(id=f"x{number}", text=text, question="better", relevant=False))
    return rows


def new_responses() -> list[Response]:
    return [Response(id=f"n{i}", text=text, question="better") for i, text in enumerate(NEW_TEXTS)]


@pytest.fixture(scope="module")
def trained() -> LocalClassifier:
    classifier = LocalClassifier(None, use_stored_model=False)
    classifier.fit(examples(), codebook(), gate=False)
    return classifier


def assert_same(left: Any, right: Any, where: str = "state") -> None:
    """Deep comparison of two states: arrays by value, estimators by their learned parts.

    numpy scalars compare as the Python numbers JSON gives back.
    """
    left = left.item() if isinstance(left, np.generic) else left
    right = right.item() if isinstance(right, np.generic) else right
    if dataclasses.is_dataclass(left) and not isinstance(left, type):
        assert type(left) is type(right), where
        for item in dataclasses.fields(left):
            assert_same(getattr(left, item.name), getattr(right, item.name), f"{where}.{item.name}")
    elif isinstance(left, np.ndarray):
        assert isinstance(right, np.ndarray) and left.dtype == right.dtype, where
        assert left.shape == right.shape and (left == right).all(), where
    elif sp.issparse(left):
        assert sp.issparse(right) and left.shape == right.shape, where
        assert (left != right).nnz == 0, where
    elif isinstance(left, BaseEstimator):
        assert type(left) is type(right), where
        for name, value in vars(left).items():
            if name.endswith("_") and not name.startswith("_"):
                assert_same(value, getattr(right, name), f"{where}.{name}")
    elif isinstance(left, dict):
        assert isinstance(right, dict) and list(left) == list(right), where
        for key in left:
            assert_same(left[key], right[key], f"{where}[{key!r}]")
    elif isinstance(left, list | tuple):
        assert type(left) is type(right) and len(left) == len(right), where
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            assert_same(a, b, f"{where}[{index}]")
    else:
        assert left == right and type(left) is type(right), f"{where}: {left!r} != {right!r}"


def test_a_trained_state_round_trips_through_the_safe_format(trained: LocalClassifier) -> None:
    state = trained.state
    assert state is not None
    # The fixture trains every part, so the round trip covers each model class.
    assert state.theme_model is not None and state.pair_model is not None
    assert state.stance_model is not None and state.relevance_model is not None
    blob = state_io.dumps(state)
    assert blob.startswith(state_io.MAGIC) and state_io.blob_format(blob) == state_io.FORMAT_NAME
    assert b"\x80\x04\x95" not in blob[:64]  # no pickle header anywhere near the start
    assert_same(state, state_io.loads(blob))


def test_proposals_after_save_and_load_equal_those_before(
    trained: LocalClassifier, db_path: Path
) -> None:
    responses = new_responses()
    before = trained.propose(responses, codebook())
    with Store(db_path) as store:
        store.save_codebook(codebook(), source="test")
        trained.save(store)
        loaded = LocalClassifier.load(store)
        assert loaded.model_version == trained.model_version
        after = loaded.propose(responses, codebook())
        assert [row["format"] for row in model_storage(store)] == [state_io.FORMAT_NAME]
    for first, second in zip(before, after, strict=True):
        assert first.proposal is not None and second.proposal is not None
        assert first.proposal.model_dump(
            exclude={"confidence", "stance_confidence", "relevance_confidence", "themes"}
        ) == second.proposal.model_dump(
            exclude={"confidence", "stance_confidence", "relevance_confidence", "themes"}
        )
        assert first.proposal.theme_codes == second.proposal.theme_codes
        assert np.allclose(
            [first.proposal.confidence, *(t.confidence for t in first.proposal.themes)],
            [second.proposal.confidence, *(t.confidence for t in second.proposal.themes)],
        )
    # And the models' own scores, not only the rounded proposals.
    state, other = trained.state, loaded.state
    assert state is not None and other is not None
    assert state.theme_model is not None and other.theme_model is not None
    embeddings = trained.encoder.encode(NEW_TEXTS)
    questions = ["better"] * len(NEW_TEXTS)
    assert np.allclose(
        state.theme_model.scores(NEW_TEXTS, embeddings, questions),
        other.theme_model.scores(NEW_TEXTS, embeddings, questions),
    )
    for name in ("stance_model", "relevance_model"):
        mine, theirs = getattr(state, name), getattr(other, name)
        extra = np.zeros((len(NEW_TEXTS), mine.extra_width)) if mine.extra_width else None
        assert np.allclose(
            mine.probabilities(NEW_TEXTS, embeddings, questions, extra),
            theirs.probabilities(NEW_TEXTS, embeddings, questions, extra),
        )


def test_new_plain_fields_are_carried_and_unknown_types_refused(trained: LocalClassifier) -> None:
    assert trained.state is not None
    state = dataclasses.replace(
        trained.state,
        metrics={
            **trained.state.metrics,
            "nested": {"ints": [1, 2], "nan": float("nan"), "pair": (1, "a"), 3: "int key"},
            "__array__": "a plain key that looks like a marker",
        },
        stance_questions={"b", "a"},
    )
    loaded = state_io.loads(state_io.dumps(state))
    assert loaded.metrics["nested"]["pair"] == (1, "a")
    assert loaded.metrics["nested"][3] == "int key"
    assert np.isnan(loaded.metrics["nested"]["nan"])
    assert loaded.metrics["__array__"] == "a plain key that looks like a marker"
    assert loaded.stance_questions == {"a", "b"}
    odd = dataclasses.replace(trained.state, metrics={"callback": lambda: None})
    with pytest.raises(state_io.StateFormatError, match="metrics.callback"):
        state_io.dumps(odd)


class Planted:
    """A pickle payload whose loading creates a file: what an attacker would plant."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def plant_pickle(db: Path, marker: Path, version: str = "local:planted") -> None:
    """Write a crafted pickle into the models table, as a hostile project file would hold."""
    with Store(db) as store:
        store.db.table("models").insert(
            {
                "backend": "local",
                "model": "minilm-l6-int8+kernel-ridge",
                "version": version,
                "params": "{}",
                "metrics": "{}",
                "n_examples": 10,
                "codebook_version": 1,
                "trained_at": "2026-01-01T00:00:00+00:00",
                "blob": pickle.dumps(Planted(marker)),
            }
        )


def test_precode_never_unpickles_a_planted_model(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    marker = tmp_path / "pwned"
    with Store(db) as store:
        store.save_codebook(codebook(), source="test")
        store.add_responses(new_responses())
    plant_pickle(db, marker)
    runner = CliRunner()
    for extra in ([], ["--redo"]):
        result = runner.invoke(cli, ["precode", "--db", str(db), *extra])
        assert result.exit_code == 1, result.output
        assert not marker.exists(), "the planted pickle ran"
        assert "pickle" in result.output and "coder train" in result.output
        assert "Traceback" not in result.output
    with Store(db) as store, pytest.raises(CoderError, match="never|no longer loads pickles"):
        load_state(store)
    assert not marker.exists()
    # Retraining stores a safe model, which precode then uses; the planted row stays unread.
    with Store(db) as store:
        classifier = LocalClassifier(None, use_stored_model=False)
        classifier.fit(examples(), codebook(), gate=False)
        classifier.save(store)
    result = runner.invoke(cli, ["precode", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert not marker.exists()


def test_loading_a_damaged_or_foreign_blob_is_a_clear_error(
    trained: LocalClassifier, db_path: Path
) -> None:
    assert trained.state is not None
    blob = state_io.dumps(trained.state)
    with pytest.raises(state_io.StateFormatError, match="damaged"):
        state_io.loads(blob[: len(blob) // 2])
    with pytest.raises(state_io.StateFormatError, match="format"):
        state_io.loads(b"not a state")
    assert state_io.blob_format(pickle.dumps({"a": 1})) == "pickle"
    assert state_io.blob_format(b"junk") == "unknown"
    # An npz whose JSON names a class outside the allow-list is refused by name.
    document, arrays = state_io.state_to_parts(trained.state)
    document["fields"]["theme_model"]["__object__"] = "Popen"
    with pytest.raises(state_io.StateFormatError, match="Popen"):
        state_io.state_from_parts(document, arrays)


def test_trained_state_is_still_a_plain_dataclass() -> None:
    # state_io walks the dataclass fields: TrainedState must stay a dataclass.
    assert dataclasses.is_dataclass(TrainedState)
