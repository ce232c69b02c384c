"""The project's encoder: a fine-tuned one sticks until ``coder train --default-encoder``
leads back to the shipped one, and the choice then sticks in turn."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.embedded.classifier import LocalClassifier
from coder.embedded.encoder import FAST_MODEL_NAME, FINETUNED_PREFIX, MODEL_NAME, default_model_path
from coder.store import Store
from tests.llm_fake_server import make_project
from tests.test_train_kill_rerun import _labels_file


def _store_stand_in_fine_tuned_encoder(db: Path) -> str:
    """Store the shipped graph under a fine-tuned name (a real fine-tune needs the extra)."""
    onnx = default_model_path().read_bytes()
    sha = hashlib.sha256(onnx).hexdigest()
    name = FINETUNED_PREFIX + sha[:12]
    with Store(db) as store:
        store.save_encoder(
            name, onnx, sha256=sha, quantized=False, base="shipped graph", params={}, metrics={}
        )
    return name


def _active_encoder(db: Path) -> str:
    result = CliRunner().invoke(cli, ["models", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    (active,) = [record for record in json.loads(result.output) if record["active"]]
    return str(active["encoder"])


def test_default_encoder_leads_back_from_a_fine_tuned_one(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    make_project(db, n=12).close()
    tuned = _store_stand_in_fine_tuned_encoder(db)
    with Store(db) as store:
        assert store.project_encoder_name() == tuned
        assert LocalClassifier(store).encoder.name == tuned  # zero-shot uses it too
    labels = _labels_file(tmp_path / "labels.jsonl")
    train = ["train", "--db", str(db), "--from-file", str(labels)]

    assert CliRunner().invoke(cli, train).exit_code == 0
    assert _active_encoder(db) == tuned

    result = CliRunner().invoke(cli, [*train, "--default-encoder"])
    assert result.exit_code == 0, result.output
    assert _active_encoder(db) in (MODEL_NAME, FAST_MODEL_NAME)
    with Store(db) as store:
        back = store.project_encoder_name()
        assert back in (MODEL_NAME, FAST_MODEL_NAME)
        # Proposals made after the switch name the shipped encoder's model.
        latest = store.db.execute(
            "select model from proposals order by id desc limit 1"
        ).fetchone()[0]
        assert tuned not in latest
        assert store.latest_encoder_name() == tuned  # kept, not deleted

    # A plain retrain keeps to the last choice.
    assert CliRunner().invoke(cli, train).exit_code == 0
    assert _active_encoder(db) == back


def test_default_encoder_and_fine_tune_exclude_each_other(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    make_project(db, n=3).close()
    result = CliRunner().invoke(cli, ["train", "--db", str(db), "--default-encoder", "--fine-tune"])
    assert result.exit_code == 2 and "exclude each other" in result.output


@pytest.fixture(autouse=True)
def _fresh_encoders() -> None:
    """Loaded fine-tuned encoders are cached per process by name; keep tests apart."""
    from coder.embedded import encoder

    for name in [n for n in encoder._encoders if n.startswith(FINETUNED_PREFIX)]:
        del encoder._encoders[name]
