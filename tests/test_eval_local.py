"""``coder eval --backend local``: zero-shot, --train, --cv, --learning-curve, train/test filters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.store import Store
from eval import runner
from eval.gold import load_gold

pytest.importorskip("coder.embedded.classifier", reason="the local backend is not available")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
NHS = SHARED / "gold" / "nhs_pxtextmining_v6"
ARGKP = SHARED / "gold" / "argkp_2021"

CODEBOOK = {
    "name": "ward feedback",
    "description": "What patients said about a hospital ward.",
    "questions": [{"id": "Q", "text": "What could we do better?"}],
    "stance": {"values": ["positive", "negative"], "description": "sentiment"},
    "relevance": {"description": "blank answers"},
    "codes": [
        {
            "id": "staff",
            "label": "Staff attitude",
            "category": "people",
            "definition": "How kind, caring and polite the nurses and doctors were.",
            "examples": ["The nurses were lovely"],
            "group": None,
        },
        {
            "id": "wait",
            "label": "Waiting time",
            "category": "access",
            "definition": "How long patients waited to be seen or for an appointment.",
            "examples": ["I waited three hours"],
            "group": None,
        },
        {
            "id": "food",
            "label": "Food and drink",
            "category": "environment",
            "definition": "Meals, drinks and snacks served on the ward.",
            "examples": ["The dinner was cold"],
            "group": None,
        },
    ],
}

TEXTS = {
    "staff": [
        ("The nurses were kind and caring", "positive"),
        ("Doctors were rude to my mother", "negative"),
        ("Friendly staff who listened", "positive"),
        ("A nurse shouted at me", "negative"),
    ],
    "wait": [
        ("I waited four hours in A&E", "negative"),
        ("Seen quickly, no waiting at all", "positive"),
        ("The appointment was delayed twice", "negative"),
        ("Waiting room queue took ages", "negative"),
    ],
    "food": [
        ("The meals were cold and bland", "negative"),
        ("Lovely hot dinner and plenty of tea", "positive"),
        ("No vegetarian food on the menu", "negative"),
        ("Breakfast was tasty", "positive"),
    ],
}


def _items(split: str, start: int, copies: int) -> list[dict[str, Any]]:
    items = []
    number = start
    for copy in range(copies):
        for code, texts in TEXTS.items():
            for text, stance in texts:
                items.append(
                    {
                        "id": f"{split}{number}",
                        "text": f"{text}{'.' * (copy + 1)}",
                        "question": "Q",
                        "group": None,
                        "labels": [code],
                        "stance": stance,
                        "relevant": True,
                        "meta": {"source_split": split},
                    }
                )
                number += 1
    items.append(
        {
            "id": f"{split}blank",
            "text": "",
            "question": "Q",
            "labels": [],
            "stance": None,
            "relevant": False,
            "meta": {"source_split": split},
        }
    )
    return items


@pytest.fixture()
def gold_folder(tmp_path: Path) -> Path:
    """A small gold folder: 25 'train' items then 13 'dev' items, with meta.source_split."""
    folder = tmp_path / "gold"
    folder.mkdir()
    (folder / "codebook.json").write_text(json.dumps(CODEBOOK))
    items = _items("train", 0, 2) + _items("dev", 100, 1)
    (folder / "dev.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    return folder


def _eval(args: list[str], tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out = tmp_path / "metrics.json"
    db = tmp_path / "eval.db"
    result = CliRunner().invoke(
        cli, ["eval", *args, "--json-file", str(out), "--db", str(db), "--resamples", "50"]
    )
    assert result.exit_code == 0, result.output
    with Store(db) as store:
        runs = store.eval_runs()
    return json.loads(out.read_text()), runs


def test_eval_local_zero_shot(gold_folder: Path, tmp_path: Path) -> None:
    metrics, runs = _eval([str(gold_folder), "--backend", "local"], tmp_path)
    assert metrics["run"]["mode"] == "zero-shot"
    assert metrics["run"]["n_train"] == 0
    assert metrics["n_items"] == 38
    assert metrics["n_missing_predictions"] == 0
    assert 0.0 <= metrics["themes"]["micro_f1"] <= 1.0
    # The blank answer is caught by the relevance rules.
    assert metrics["relevance"]["f1"] == 1.0
    assert runs[-1]["backend"] == "local" and runs[-1]["n_items"] == 38
    assert runs[-1]["params"]["mode"] == "zero-shot"


def test_eval_local_train_and_test_filters(gold_folder: Path, tmp_path: Path) -> None:
    metrics, runs = _eval(
        [
            str(gold_folder),
            "--train-filter",
            "meta.source_split=train",
            "--test-filter",
            "meta.source_split=dev",
        ],
        tmp_path,
    )
    assert metrics["run"]["mode"] == "trained"
    assert metrics["run"]["n_train"] == 25
    assert metrics["n_items"] == 13
    assert metrics["themes"]["micro_f1"] > 0.5
    assert "kernel-ridge" in metrics["run"]["model"]
    assert runs[-1]["params"]["train_filter"] == ["meta.source_split=train"]


def test_eval_local_train_file_drops_scored_items(gold_folder: Path, tmp_path: Path) -> None:
    # Training on the very file that is scored would leak: the overlap is left out.
    _, items = load_gold(gold_folder)
    train = tmp_path / "train.jsonl"
    train.write_text((gold_folder / "dev.jsonl").read_text())
    result = CliRunner().invoke(
        cli,
        [
            "eval", str(gold_folder), "--test-filter", "meta.source_split=dev",
            "--train", str(train), "--json-file", str(tmp_path / "m.json"),
            "--db", str(tmp_path / "e.db"), "--resamples", "0",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "left out of training" in result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["run"]["n_train"] == len(items) - 13


def test_eval_local_cv(gold_folder: Path, tmp_path: Path) -> None:
    metrics, runs = _eval([str(gold_folder), "--cv", "3"], tmp_path)
    assert metrics["run"]["mode"] == "3-fold cv"
    assert metrics["n_items"] == 38 and metrics["n_missing_predictions"] == 0
    assert runs[-1]["params"]["cv"] == 3


def test_eval_local_learning_curve(gold_folder: Path, tmp_path: Path) -> None:
    metrics, runs = _eval([str(gold_folder), "--learning-curve", "0,10,all"], tmp_path)
    curve = metrics["learning_curve"]
    assert [point["n_train"] for point in curve] == [0, 10, 30]
    assert all(point["n_test"] == 8 for point in curve)  # a fixed, seeded 20% held out
    assert metrics["n_items"] == 8
    assert "themes.micro_f1" in curve[0] and "themes.micro_f1" in curve[0]["ci"]
    assert runs[-1]["params"]["mode"] == "learning curve"


def test_eval_local_bad_combinations(gold_folder: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "e.db")
    cases = [
        (["--cv", "3", "--train-filter", "meta.source_split=train"], "cannot be combined"),
        (["--train-filter", "source_split"], "expected PATH=VALUE"),
        (["--test-filter", "meta.source_split=nowhere"], "no item matches"),
        (["--learning-curve", "10,x"], "not a number"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(cli, ["eval", str(gold_folder), *args, "--db", db])
        assert result.exit_code == 1, result.output
        assert message in result.output


def test_item_filter_paths() -> None:
    _, items = runner.split_pool([], 0)
    assert items == []
    flt = runner.ItemFilter.parse("meta.source_split=train|dev", "--train-filter")
    assert flt.values == ("train", "dev")
    from eval.gold import GoldItem

    item = GoldItem(id="a", question="Q", meta={"source_split": "dev"})
    assert flt.matches(item)
    assert runner.ItemFilter.parse("question=Q", "--test-filter").matches(item)
    assert not runner.ItemFilter.parse("meta.other=x", "--test-filter").matches(item)


# --- the real gold sets (slow) ----------------------------------------------------------------
def _need(folder: Path) -> None:
    if not folder.is_dir():
        pytest.skip(f"gold set not found at {folder}: ../shared/gold sits beside the repository")


@pytest.mark.slow
def test_eval_local_nhs_cv_subset(tmp_path: Path) -> None:
    _need(NHS)
    metrics, runs = _eval([str(NHS), "--limit", "300", "--cv", "3"], tmp_path)
    assert metrics["n_items"] == 300 and metrics["n_missing_predictions"] == 0
    assert metrics["run"]["mode"] == "3-fold cv"
    for key in ("micro_f1", "macro_f1", "samples_f1"):
        assert 0.2 < metrics["themes"][key] <= 1.0
        assert metrics["ci"][f"themes.{key}"][0] is not None
    assert metrics["stance"]["accuracy"] > 0.4
    assert runs[-1]["params"]["cv"] == 3 and runs[-1]["n_items"] == 300


@pytest.mark.slow
def test_eval_local_argkp_train_to_dev_subset(tmp_path: Path) -> None:
    _need(ARGKP)
    metrics, runs = _eval(
        [
            str(ARGKP),
            "--train-filter",
            "meta.source_split=train",
            "--test-filter",
            "meta.source_split=dev",
            "--limit",
            "150",
        ],
        tmp_path,
    )
    assert metrics["n_items"] == 150 and metrics["run"]["n_train"] == 600
    matching = metrics["matching"]
    assert 0.2 < matching["map_strict"] <= matching["map_relaxed"] <= 1.0
    assert metrics["stance"]["accuracy"] > 0.5
    assert runs[-1]["params"]["test_filter"] == ["meta.source_split=dev"]


@pytest.mark.slow
def test_eval_local_nhs_learning_curve_subset(tmp_path: Path) -> None:
    _need(NHS)
    metrics, runs = _eval([str(NHS), "--limit", "400", "--learning-curve", "50,100"], tmp_path)
    curve = metrics["learning_curve"]
    assert [point["n_train"] for point in curve] == [50, 100]
    assert all(point["n_test"] == 80 for point in curve)
    assert all(point["themes.micro_f1"] is not None for point in curve)
    assert metrics["run"]["n_train"] == 100
    assert runs[-1]["params"]["learning_curve"] == "50,100"
