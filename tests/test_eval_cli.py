"""``coder eval``: scoring predictions against a gold folder, thresholds, stored runs, history."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.store import Store
from eval.gold import load_gold
from schemas import Labels, Proposal, Response, ThemeAssignment

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
NHS = SHARED / "gold" / "nhs_pxtextmining_v6"
ARGKP = SHARED / "gold" / "argkp_2021"

CODEBOOK = {
    "name": "toy",
    "description": "",
    "questions": [{"id": "Q", "text": "What was good?"}, {"id": "M", "text": "A motion"}],
    "stance": {"values": ["positive", "mixed", "negative"], "description": "sentiment"},
    "relevance": {"description": "blank answers"},
    "codes": [
        {
            "id": "staff",
            "label": "Staff",
            "category": "c",
            "definition": "staff",
            "examples": [],
            "group": None,
        },
        {
            "id": "wait",
            "label": "Waiting",
            "category": "c",
            "definition": "waiting",
            "examples": [],
            "group": None,
        },
        {
            "id": "food",
            "label": "Food",
            "category": "c",
            "definition": "food",
            "examples": [],
            "group": None,
        },
        {
            "id": "kp1",
            "label": "Key point",
            "category": "pro",
            "definition": "kp",
            "examples": [],
            "group": "M",
        },
    ],
}


def _item(
    i: int, labels: list[str], stance: str | None, relevant: bool = True, **extra: Any
) -> dict[str, Any]:
    return {
        "id": f"i{i}", "text": f"text {i}", "question": "Q", "group": None, "labels": labels,
        "stance": stance, "relevant": relevant, "meta": {}, **extra,
    }  # fmt: skip


@pytest.fixture()
def gold_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "gold"
    folder.mkdir()
    (folder / "codebook.json").write_text(json.dumps(CODEBOOK))
    items = [
        _item(1, ["staff"], "positive"),
        _item(2, ["staff", "wait"], "mixed"),
        _item(3, ["wait"], "negative"),
        _item(4, [], None, relevant=False),
        _item(5, ["staff"], "positive"),
        _item(6, ["wait"], "negative"),
        _item(7, [], "positive"),
        _item(8, ["staff"], "positive"),
    ]
    (folder / "dev.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    return folder


def _write_predictions(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


PREDICTIONS = [
    {
        "id": "i1",
        "labels": ["staff"],
        "stance": "positive",
        "relevant": True,
        "stance_confidence": 0.9,
    },
    {"id": "i2", "labels": ["staff"], "stance": "mixed", "relevant": True},
    {"id": "i3", "labels": ["wait", "food"], "stance": "negative", "relevant": True},
    {"id": "i4", "labels": ["staff"], "stance": None, "relevant": False},
    {"id": "i5", "labels": ["staff"], "stance": "negative", "relevant": True},
    {"id": "i6", "labels": ["wait"], "stance": "negative", "relevant": True},
    {"id": "i7", "labels": [], "stance": "positive", "relevant": True},
    # i8 has no prediction
]


def test_eval_predictions_scores_and_stores(gold_folder: Path, tmp_path: Path) -> None:
    preds = _write_predictions(tmp_path / "preds.jsonl", PREDICTIONS)
    out = tmp_path / "metrics.json"
    db = tmp_path / "project.db"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            str(gold_folder),
            "--predictions",
            str(preds),
            "--json-file",
            str(out),
            "--db",
            str(db),
            "--resamples",
            "200",
        ],
    )
    assert result.exit_code == 0, result.output
    m = json.loads(out.read_text())
    assert m["n_items"] == 8
    assert m["n_missing_predictions"] == 1
    themes = m["themes"]
    # i4 (not relevant) is excluded from theme scoring: 7 items
    assert themes["n_items"] == 7
    # tp: i1 staff, i2 staff, i3 wait, i5 staff, i6 wait = 5; fp: food = 1; fn: i2 wait, i8 staff = 2
    assert themes["micro_f1"] == pytest.approx(2 * 5 / (2 * 5 + 1 + 2))
    assert set(themes["per_code"]) == {"staff", "wait"}  # food and kp1 have no gold positives
    assert "food" in themes["skipped_codes"]
    staff = themes["per_code"]["staff"]
    assert staff["support"] == 4 and staff["prevalence"] == pytest.approx(4 / 7)
    assert set(staff) >= {"precision", "recall", "f1", "kappa", "prevalence", "support"}
    for key in ("themes.micro_f1", "themes.macro_f1", "themes.samples_f1", "stance.kappa"):
        lo, hi = m["ci"][key]
        assert lo <= hi
    assert m["stance"]["accuracy"] == pytest.approx(5 / 7)  # i5 wrong, i8 no prediction
    assert "kappa" in m["stance"] and "macro_f1" in m["stance"]
    assert m["relevance"]["f1"] == pytest.approx(1.0)
    assert "kappa" in m["relevance"]
    assert m["calibration"]["stance"]["n"] == 1
    with Store(db) as store:
        runs = store.eval_runs()
    assert len(runs) == 1
    assert runs[0]["backend"] == "predictions"
    assert runs[0]["n_items"] == 8
    assert runs[0]["metrics"]["themes"]["micro_f1"] == pytest.approx(themes["micro_f1"])
    assert runs[0]["data_hash"] and runs[0]["codebook_hash"]


def test_eval_with_codebook_and_items_files(gold_folder: Path, tmp_path: Path) -> None:
    preds = _write_predictions(tmp_path / "preds.jsonl", PREDICTIONS)
    result = CliRunner().invoke(
        cli,
        [
            "eval", "--codebook", str(gold_folder / "codebook.json"), "--items", str(gold_folder / "dev.jsonl"),
            "--predictions", str(preds), "--no-store", "--resamples", "0", "--limit", "3",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3 items" in result.output


def test_eval_min_threshold_fails(gold_folder: Path, tmp_path: Path) -> None:
    preds = _write_predictions(tmp_path / "preds.jsonl", PREDICTIONS)
    base = ["eval", str(gold_folder), "--predictions", str(preds), "--no-store", "--resamples", "0"]
    ok = CliRunner().invoke(cli, [*base, "--min", "themes.micro_f1=0.5"])
    assert ok.exit_code == 0, ok.output
    low = CliRunner().invoke(
        cli, [*base, "--min", "themes.micro_f1=0.9", "--min", "stance.kappa=0.1"]
    )
    assert low.exit_code == 1
    assert "themes.micro_f1" in low.output and "below the minimum 0.9" in low.output
    per_code = CliRunner().invoke(cli, [*base, "--min", "themes.per_code.staff.f1=0.99"])
    assert per_code.exit_code == 1
    unknown = CliRunner().invoke(cli, [*base, "--min", "themes.nothing=0.1"])
    assert unknown.exit_code == 1 and "no such metric" in unknown.output


def test_eval_history_compares_runs(gold_folder: Path, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    preds = _write_predictions(tmp_path / "preds.jsonl", PREDICTIONS)
    perfect = _write_predictions(
        tmp_path / "perfect.jsonl",
        [json.loads(line) for line in (gold_folder / "dev.jsonl").read_text().splitlines()],
    )
    for path, name in ((preds, "first"), (perfect, "oracle")):
        result = CliRunner().invoke(
            cli,
            [
                "eval",
                str(gold_folder),
                "--predictions",
                str(path),
                "--db",
                str(db),
                "--name",
                name,
                "--resamples",
                "0",
            ],
        )
        assert result.exit_code == 0, result.output
    history = CliRunner().invoke(cli, ["eval", "history", "--db", str(db)], terminal_width=200)
    assert history.exit_code == 0, history.output
    assert "#1 first" in history.output and "#2 oracle" in history.output
    assert "themes.micro_f1" in history.output
    assert "1.000" in history.output  # the oracle's micro F1


def test_eval_report_writes_markdown_and_html(gold_folder: Path, tmp_path: Path) -> None:
    preds = _write_predictions(tmp_path / "preds.jsonl", PREDICTIONS)
    report = tmp_path / "report"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            str(gold_folder),
            "--predictions",
            str(preds),
            "--no-store",
            "--report",
            str(report),
            "--resamples",
            "50",
        ],
    )
    assert result.exit_code == 0, result.output
    html = (report / "report.html").read_text()
    assert "data:image/png;base64," in html and "<img" in html
    assert "themes.micro_f1" in (report / "report.md").read_text()


def test_eval_bad_predictions_file(gold_folder: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "i1", "labels": "staff"}\n')
    result = CliRunner().invoke(
        cli, ["eval", str(gold_folder), "--predictions", str(bad), "--no-store"]
    )
    assert result.exit_code == 1
    assert "bad.jsonl, line 1, field 'labels'" in result.output


def test_eval_needs_gold(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["eval", "--no-store"])
    assert result.exit_code == 1
    assert "gold folder" in result.output


def test_matching_map_with_uncertain_labels(tmp_path: Path) -> None:
    folder = tmp_path / "kp"
    folder.mkdir()
    (folder / "codebook.json").write_text(json.dumps(CODEBOOK))
    items = [
        {"id": f"a{i}", "text": "t", "question": "M", "group": "M", "labels": ["kp1"] if i < 2 else [],
         "uncertain_labels": ["kp1"] if i in (2, 3) else [], "stance": "positive", "relevant": True, "meta": {}}
        for i in range(6)
    ]  # fmt: skip
    (folder / "dev.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    preds = _write_predictions(
        tmp_path / "p.jsonl",
        [{"id": f"a{i}", "labels": ["kp1"], "scores": {"kp1": 1.0 - i / 10}} for i in range(6)],
    )
    out = tmp_path / "m.json"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            str(folder),
            "--predictions",
            str(preds),
            "--json-file",
            str(out),
            "--no-store",
            "--resamples",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    m = json.loads(out.read_text())
    assert m["matching"]["map_strict"] == pytest.approx(1.0)  # top 3: a0, a1 match; a2 uncertain
    assert m["matching"]["map_relaxed"] == pytest.approx(1.0)
    assert m["themes"]["per_code"]["kp1"]["scope"] == "group"


@pytest.mark.slow
def test_eval_on_nhs_dev_with_generated_predictions(tmp_path: Path) -> None:
    if not NHS.is_dir():
        pytest.skip(f"gold sets not found at {NHS}")
    codebook, items = load_gold(NHS)
    rng = random.Random(0)
    rows = []
    for item in items:
        labels = [label for label in item.labels if rng.random() < 0.8]
        rows.append(
            {"id": item.id, "labels": labels, "stance": item.stance, "relevant": item.relevant}
        )
    preds = _write_predictions(tmp_path / "nhs.jsonl", rows)
    out = tmp_path / "nhs.json"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            str(NHS),
            "--predictions",
            str(preds),
            "--json-file",
            str(out),
            "--db",
            str(tmp_path / "e.db"),
        ],
    )
    assert result.exit_code == 0, result.output
    m = json.loads(out.read_text())
    assert m["n_items"] == len(items) == 5490
    assert m["themes"]["micro_precision"] == pytest.approx(1.0)
    assert 0.7 < m["themes"]["micro_recall"] < 0.9
    assert m["stance"]["accuracy"] == pytest.approx(1.0)
    assert m["relevance"]["kappa"] == pytest.approx(1.0)
    assert len(m["themes"]["per_code"]) == len(codebook.themes) - len(m["themes"]["skipped_codes"])


@pytest.mark.slow
def test_eval_on_argkp_dev_reports_map(tmp_path: Path) -> None:
    if not ARGKP.is_dir():
        pytest.skip(f"gold sets not found at {ARGKP}")
    _, items = load_gold(ARGKP)
    rows = [{"id": item.id, "labels": item.labels[:1], "stance": item.stance} for item in items]
    preds = _write_predictions(tmp_path / "kp.jsonl", rows)
    out = tmp_path / "kp.json"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            str(ARGKP),
            "--predictions",
            str(preds),
            "--json-file",
            str(out),
            "--no-store",
            "--resamples",
            "100",
        ],
    )
    assert result.exit_code == 0, result.output
    m = json.loads(out.read_text())
    assert m["matching"]["map_strict"] == pytest.approx(1.0)
    assert m["matching"]["map_relaxed"] == pytest.approx(1.0)


def test_eval_agreement_in_a_project(tmp_path: Path) -> None:
    db = tmp_path / "project.db"
    with Store(db) as store:
        store.add_responses([Response(id=f"r{i}", text=f"text {i}") for i in range(6)])
        for i in range(6):
            proposal = Proposal(
                response_id=f"r{i}",
                stance="resonates" if i % 2 else "partly",
                themes=[ThemeAssignment(code="a")] + ([ThemeAssignment(code="b")] if i < 3 else []),
            )
            pid = store.add_proposal(
                response_id=f"r{i}",
                backend="local",
                model="m",
                proposal=proposal,
                codebook_version=None,
            )
            store.add_decision(
                response_id=f"r{i}", reviewer="ann", action="correct" if i == 0 else "accept", proposal_id=pid,
                labels=Labels(stance="resonates" if i % 2 else "partly", themes=["a"] if i == 0 else ["a", "b"][: 2 if i < 3 else 1]),
            )  # fmt: skip
        for i in range(4):  # bob double-codes r0..r3
            store.add_decision(
                response_id=f"r{i}", reviewer="bob", action="correct",
                labels=Labels(stance="resonates", themes=["a"]),
            )  # fmt: skip
    out = tmp_path / "agreement.json"
    result = CliRunner().invoke(
        cli,
        ["eval", "agreement", "--db", str(db), "--json-file", str(out), "--resamples", "50"],
        terminal_width=160,
    )
    assert result.exit_code == 0, result.output
    assert "model–human" in result.output and "human–human" in result.output
    data = json.loads(out.read_text())
    assert data["reviewers"] == ["ann", "bob"]
    assert data["n_double_coded"] == 4
    assert data["model_human"]["n_items"] == 6
    assert data["human_human"]["n_items"] == 4
    # ann vs bob themes: r0 {a}/{a}, r1 {a,b}/{a}, r2 {a,b}/{a}, r3 {a}/{a} -> exact 2/4
    assert data["human_human"]["themes.exact_match"] == pytest.approx(0.5)


class _MajorityClassifier:
    """A tiny learning backend: predicts the training set's most common theme and stance."""

    backend = "test"
    model = "majority"

    def __init__(self) -> None:
        self.theme: str | None = None
        self.stance: str | None = None

    def fit(self, examples: list[Any], codebook: Any) -> None:
        """The local classifier's API: LabelledExample objects and the codebook."""
        from collections import Counter

        themes = Counter(t for example in examples for t in example.themes)
        stances = Counter(example.stance for example in examples if example.stance)
        self.theme = themes.most_common(1)[0][0] if themes else None
        self.stance = stances.most_common(1)[0][0] if stances else None

    def propose(self, responses: list[Response], codebook: Any) -> list[Any]:
        from coder.backends.base import ProposalResult

        return [
            ProposalResult(
                response_id=r.id,
                proposal=Proposal(
                    response_id=r.id,
                    stance=self.stance,
                    themes=[ThemeAssignment(code=self.theme)] if self.theme else [],
                ),
            )
            for r in responses
        ]


def test_cross_validation_pools_out_of_fold_predictions(gold_folder: Path) -> None:
    from eval import runner
    from eval.scoring import score

    codebook, items = load_gold(gold_folder)
    predictions, results = runner.cross_validate(_MajorityClassifier, items, codebook, k=4)
    assert set(predictions) == {item.id for item in items}
    assert len(results) == len(items)
    metrics = score(codebook, items, predictions, n_resamples=0)
    assert metrics["n_missing_predictions"] == 0
    assert runner.parse_sizes("50, 100,all") == [50, 100, None]


@pytest.mark.slow
def test_eval_local_backend_on_nhs_dev(tmp_path: Path) -> None:
    pytest.importorskip("coder.embedded.classifier", reason="the local backend is not written yet")
    if not NHS.is_dir():
        pytest.skip(f"gold sets not found at {NHS}")
    out = tmp_path / "local.json"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            str(NHS),
            "--backend",
            "local",
            "--limit",
            "200",
            "--json-file",
            str(out),
            "--db",
            str(tmp_path / "e.db"),
        ],
    )
    assert result.exit_code == 0, result.output
    m = json.loads(out.read_text())
    assert m["n_items"] == 200
    assert m["themes"]["micro_f1"] is not None
