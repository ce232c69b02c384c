"""``coder eval`` baselines: nearest theme + majority class, TF-IDF, added value, parent rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from coder.cli import cli
from coder.store import Store
from eval import baselines
from eval.gold import GoldItem, load_gold
from eval.scoring import Prediction, score
from schemas import Codebook, Theme

pytest.importorskip("coder.embedded.encoder", reason="the local encoder is not available")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
RAPID = SHARED / "gold" / "rapid_insight_dev"

CODES = [
    # id, label, definition, examples, group
    ("staff", "Staff attitude", "Kind and caring nurses.", ["The nurses were lovely"], None),
    ("wait", "Waiting time", "Long queues to be seen.", ["I waited hours", "Delays"], None),
    ("food", "Food", "Meals served on the ward.", [], None),
    ("kp_a", "Cats", "Cats make great pets for busy people.", [], "A"),
    ("kp_b", "Cats", "Cats make great pets for busy people!", [], "B"),
]
# The text each theme is embedded as, written out by hand (label: definition examples).
TEXT = {
    "staff": "Staff attitude: Kind and caring nurses. The nurses were lovely",
    "wait": "Waiting time: Long queues to be seen. I waited hours Delays",
    "food": "Food: Meals served on the ward.",
    "kp_a": "Cats: Cats make great pets for busy people.",
}


def _codebook() -> dict[str, Any]:
    return {
        "name": "toy",
        "description": "",
        "questions": [{"id": "Q", "text": "What could we do better?"}],
        "stance": {"values": ["pos", "neg"], "description": "sentiment"},
        "relevance": {"description": "blank answers"},
        "codes": [
            {"id": c, "label": label, "category": "x", "definition": d, "examples": ex, "group": g}
            for c, label, d, ex, g in CODES
        ],
    }


def _item(
    i: int, text: str, labels: list[str], stance: str | None, relevant: bool = True, **extra: Any
) -> dict[str, Any]:
    return {
        "id": f"i{i}", "text": text, "question": "Q", "group": None, "labels": labels,
        "stance": stance, "relevant": relevant, "meta": {}, **extra,
    }  # fmt: skip


# Each answer is a theme's own text, so its nearest theme is known without a model.
ITEMS = [
    _item(1, TEXT["staff"], ["staff"], "pos"),  # -> staff: TP staff
    _item(2, TEXT["wait"], ["wait", "staff"], "pos"),  # -> wait: TP wait, FN staff
    _item(3, TEXT["food"], ["staff"], "neg"),  # -> food: FP food, FN staff
    _item(4, TEXT["food"], [], "pos"),  # -> food: FP food
    _item(5, "", [], None, relevant=False),  # not relevant: no theme figures
    # Group B: kp_a is the identical text but applies only to group A, so -> kp_b: TP kp_b
    _item(6, TEXT["kp_a"], ["kp_b"], "neg", question="B", group="B"),
]
# Hand computation (themes on the 5 gold-relevant items): TP 3, FP 2, FN 2.
MICRO_F1 = 2 * 3 / (2 * 3 + 2 + 2)
# Per code with gold positives: staff F1 2/(2+2) = 0.5, wait 1, kp_b 1 (food, kp_a skipped).
MACRO_F1 = (0.5 + 1 + 1) / 3
# Stance over the 5 relevant items with a stance: pos 3, neg 2 -> majority pos, 3/5 right.
STANCE_ACCURACY = 3 / 5


@pytest.fixture()
def gold_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "gold"
    folder.mkdir()
    (folder / "codebook.json").write_text(json.dumps(_codebook()))
    (folder / "dev.jsonl").write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    return folder


def _eval(args: list[str], tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    out = tmp_path / "metrics.json"
    db = tmp_path / "eval.db"
    result = CliRunner().invoke(
        cli, ["eval", *args, "--json-file", str(out), "--db", str(db), "--resamples", "20"]
    )
    assert result.exit_code == 0, result.output
    with Store(db) as store:
        runs = store.eval_runs()
    return json.loads(out.read_text()), runs, result.output


def test_theme_text_is_label_definition_examples() -> None:
    codebook, _ = load_gold_from(_codebook(), [])
    assert [baselines.theme_text(t) for t in codebook.themes[:4]] == list(TEXT.values())


def load_gold_from(codebook: dict[str, Any], items: list[dict[str, Any]]) -> Any:
    from coder.codebook import from_gold_format

    return Codebook.model_validate(from_gold_format(codebook)), [
        GoldItem.model_validate(item) for item in items
    ]


def test_naive_baseline_is_the_hand_computation(gold_folder: Path, tmp_path: Path) -> None:
    metrics, runs, output = _eval([str(gold_folder)], tmp_path)
    naive = metrics["baselines"]["naive"]
    figures = naive["metrics"]
    assert figures["themes.micro_f1"] == pytest.approx(MICRO_F1)
    assert figures["themes.macro_f1"] == pytest.approx(MACRO_F1)
    assert figures["stance.accuracy"] == pytest.approx(STANCE_ACCURACY)
    assert figures["stance.kappa"] == pytest.approx(0.0)
    # The majority says "relevant" for all: its not-relevant F1 is 0, accuracy 5/6.
    assert figures["relevance.f1"] == 0.0
    assert figures["relevance.accuracy"] == pytest.approx(5 / 6)
    assert naive["majority"] == [{"stance": "pos", "relevant": True, "n_items": 6}]
    # Zero-shot: the majority comes from the scored items, which the output says.
    assert naive["majority_from"] == "scored items" and "optimistic" in naive["note"]
    assert "tfidf" not in metrics["baselines"]  # no training, no TF-IDF
    added = metrics["baselines"]["added_value"]["naive"]
    assert added["themes.micro_f1"] == pytest.approx(metrics["themes"]["micro_f1"] - MICRO_F1)
    assert added["stance.accuracy"] == pytest.approx(
        metrics["stance"]["accuracy"] - STANCE_ACCURACY
    )
    assert added["relevance.f1"] == pytest.approx(metrics["relevance"]["f1"])
    assert "Baselines: what the model adds" in output and "optimistic" in output
    # Stored with the run, and shown by 'coder eval history'.
    stored = runs[-1]["metrics"]["baselines"]
    assert stored["naive"]["metrics"]["themes.micro_f1"] == pytest.approx(MICRO_F1)
    assert runs[-1]["params"]["baselines"] is True
    history = CliRunner().invoke(
        cli, ["eval", "history", "--db", str(tmp_path / "eval.db")], terminal_width=200
    )
    assert history.exit_code == 0, history.output
    row = next(line for line in history.output.splitlines() if "themes.micro_f1 − naive" in line)
    assert f"{added['themes.micro_f1']:+.3f}" in row


def test_no_baselines_omits_them(gold_folder: Path, tmp_path: Path) -> None:
    metrics, runs, output = _eval([str(gold_folder), "--no-baselines"], tmp_path)
    assert "baselines" not in metrics
    assert "baselines" not in runs[-1]["metrics"]
    assert runs[-1]["params"]["baselines"] is False
    assert "Baselines" not in output
    history = CliRunner().invoke(cli, ["eval", "history", "--db", str(tmp_path / "eval.db")])
    assert "− naive" not in history.output


def test_report_shows_the_baselines(gold_folder: Path, tmp_path: Path) -> None:
    metrics, _, _ = _eval([str(gold_folder), "--report", str(tmp_path / "report")], tmp_path)
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Baselines" in markdown and "optimistic" in markdown
    section = markdown.split("## Baselines", 1)[1].splitlines()
    row = next(line for line in section if line.startswith("| themes.micro_f1 |"))
    model = metrics["themes"]["micro_f1"]
    assert row == f"| themes.micro_f1 | {model:.3f} | {MICRO_F1:.3f} | {model - MICRO_F1:+.3f} |"
    assert "<h2>Baselines</h2>" in (tmp_path / "report" / "report.html").read_text()


def test_baselines_beside_a_predictions_file(gold_folder: Path, tmp_path: Path) -> None:
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(
        "".join(
            json.dumps({"id": item["id"], "labels": item["labels"], "stance": item["stance"]})
            + "\n"
            for item in ITEMS
        )
    )
    metrics, _, _ = _eval([str(gold_folder), "--predictions", str(predictions)], tmp_path)
    assert metrics["themes"]["micro_f1"] == 1.0
    assert metrics["baselines"]["added_value"]["naive"]["themes.micro_f1"] == pytest.approx(
        1.0 - MICRO_F1
    )


# --- trained runs: the majority from the training items, TF-IDF beside -------------------
WORDS = {
    "staff": ["nurses kind caring", "doctor rude shouted", "friendly staff listened"],
    "wait": ["waited four hours", "appointment delayed twice", "queue took ages"],
    "food": ["meals cold bland", "hot dinner tea", "breakfast tasty menu"],
}


def _trained_items() -> list[dict[str, Any]]:
    """Train (meta.split=train): stance mostly neg. Test (split=dev): stance mostly pos."""
    items = []
    number = 0
    for split, stances in (("train", ["neg", "neg", "pos"]), ("dev", ["pos", "pos", "neg"])):
        for copy in range(2):
            for code, texts in WORDS.items():
                for text, stance in zip(texts, stances, strict=True):
                    items.append(
                        _item(number, f"{text}{'!' * copy}", [code], stance, meta={"split": split})
                    )
                    number += 1
    return items


def test_majority_is_learned_from_the_training_items() -> None:
    codebook, items = load_gold_from(_codebook(), _trained_items())
    train = [item for item in items if item.meta["split"] == "train"]
    test = [item for item in items if item.meta["split"] == "dev"]
    block = baselines.evaluate(
        codebook, test, [baselines.Split(train, test)], naive_themes=None, tfidf=True
    )
    naive = block["naive"]
    assert naive["majority"] == [{"stance": "neg", "relevant": True, "n_items": len(train)}]
    assert naive["majority_from"] == "training" and "note" not in naive
    # Test stances are pos, pos, neg per code: the training majority "neg" is right 1 in 3.
    assert naive["metrics"]["stance.accuracy"] == pytest.approx(1 / 3)
    assert "themes.micro_f1" not in naive["metrics"]  # no encoder given: no theme figures
    # TF-IDF learns each code's distinct words; every test text shares them exactly.
    assert block["tfidf"]["metrics"]["themes.micro_f1"] == pytest.approx(1.0)
    assert block["tfidf"]["n_train"] == len(train)
    # Without training items the majority comes from the scored items (and says so).
    zero = baselines.evaluate(
        codebook, test, [baselines.Split([], test)], naive_themes=None, tfidf=True
    )
    assert zero["naive"]["majority"][0]["stance"] == "pos"
    assert zero["naive"]["metrics"]["stance.accuracy"] == pytest.approx(2 / 3)
    assert "tfidf" not in zero


def test_tfidf_top1_fallback_and_single_class_tasks() -> None:
    codebook, items = load_gold_from(_codebook(), _trained_items())
    train = [item for item in items if item.meta["split"] == "train"]
    model = baselines.TfidfBaseline().fit(train, codebook)
    unseen = GoldItem(id="u", text="completely unrelated words", question="Q", relevant=True)
    prediction = model.predict([unseen], codebook)["u"]
    assert len(prediction.labels) == 1  # nothing reaches 0.5: the most probable code
    assert set(prediction.scores) == {"staff", "wait", "food"}  # kp_* never seen, never scored
    assert prediction.relevant is True  # relevance had one class in training: that class


def test_tfidf_baseline_appears_with_cv(gold_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "trained"
    folder.mkdir()
    (folder / "codebook.json").write_text(json.dumps(_codebook()))
    (folder / "dev.jsonl").write_text("".join(json.dumps(item) + "\n" for item in _trained_items()))
    metrics, runs, output = _eval([str(folder), "--cv", "3"], tmp_path)
    block = metrics["baselines"]
    assert block["naive"]["majority_from"] == "training"
    assert len(block["naive"]["majority"]) == 3  # one majority per fold
    assert "themes.micro_f1" in block["tfidf"]["metrics"]
    assert set(block["added_value"]) == {"naive", "tfidf"}
    assert "TF-IDF" in output
    assert runs[-1]["metrics"]["baselines"]["tfidf"]["n_train"] == 24


def test_learning_curve_has_baselines_per_size(tmp_path: Path) -> None:
    folder = tmp_path / "trained"
    folder.mkdir()
    (folder / "codebook.json").write_text(json.dumps(_codebook()))
    (folder / "dev.jsonl").write_text("".join(json.dumps(item) + "\n" for item in _trained_items()))
    metrics, _, output = _eval([str(folder), "--learning-curve", "0,10,all"], tmp_path)
    curve = metrics["learning_curve"]
    assert [point["baselines"]["majority_from"] for point in curve] == [
        "scored items",
        "training",
        "training",
    ]
    assert "tfidf" not in curve[0]["baselines"] and "tfidf" in curve[1]["baselines"]
    # The nearest theme does not learn: the same figure at every size.
    assert len({point["baselines"]["naive"]["themes.micro_f1"] for point in curve}) == 1
    assert metrics["baselines"]["tfidf"]["n_train"] == curve[-1]["n_train"]
    assert "model vs baselines at each training size" in output


# --- the parent rule in scoring -------------------------------------------------------------
def _parent_codebook(rule: bool) -> Codebook:
    return Codebook(
        name="parents",
        themes=[
            Theme(id="process", label="Process", definition="The process."),
            Theme(id="bau", label="BAU", definition="Business as usual.", parent="process"),
        ],
        sub_themes_imply_parent=rule,
    )


def test_scoring_follows_the_parent_rule() -> None:
    items = [GoldItem(id="a", labels=["bau"], relevant=True)]
    predictions = {"a": Prediction(id="a", labels=["process"])}
    off = score(_parent_codebook(False), items, predictions, n_resamples=0)
    assert off["themes"]["micro_f1"] == 0.0
    # Rule on: gold {bau, process}, predicted {process}: TP 1, FN 1.
    on = score(_parent_codebook(True), items, predictions, n_resamples=0)
    assert on["themes"]["micro_f1"] == pytest.approx(2 / 3)
    assert on["themes"]["per_code"]["process"]["support"] == 1
    assert on["themes"]["parents_implied"] is True


def test_parent_rule_is_read_from_a_yaml_gold_codebook(tmp_path: Path) -> None:
    data = _parent_codebook(True).model_dump(mode="json")
    (tmp_path / "codebook.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "items.jsonl").write_text(
        json.dumps({"id": "a", "text": "x", "labels": ["bau"], "relevant": True}) + "\n"
    )
    (tmp_path / "p.jsonl").write_text(json.dumps({"id": "a", "labels": ["bau"]}) + "\n")
    codebook, _ = load_gold(codebook=tmp_path / "codebook.yaml", items=tmp_path / "items.jsonl")
    assert codebook.sub_themes_imply_parent
    metrics, _, _ = _eval(
        [
            "--codebook", str(tmp_path / "codebook.yaml"), "--items", str(tmp_path / "items.jsonl"),
            "--predictions", str(tmp_path / "p.jsonl"), "--no-baselines",
        ],
        tmp_path,
    )  # fmt: skip
    assert metrics["themes"]["per_code"]["process"]["support"] == 1
    assert metrics["themes"]["micro_f1"] == 1.0


# --- the real gold set ----------------------------------------------------------------------
def test_naive_baseline_on_rapid_insight_dev() -> None:
    if not RAPID.is_dir():
        pytest.skip(f"gold set not found at {RAPID}: ../shared/gold sits beside the repository")
    from coder.embedded.encoder import get_encoder

    codebook, items = load_gold(codebook=RAPID / "codebook.yaml", items=RAPID / "items.jsonl")
    predictions = baselines.nearest_theme_predictions(codebook, items, get_encoder())
    assert len(predictions) == sum(1 for item in items if item.relevant is not False)
    micro = score(codebook, items, predictions, n_resamples=0)["themes"]["micro_f1"]
    assert 0.35 <= micro <= 0.50
