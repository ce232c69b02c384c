"""``coder models``: what each trained model was trained on, its gate figures, which is active;
and a rerun of ``coder train`` on the same labels that replaces, not duplicates, its model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy
import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.store import Store
from tests.llm_fake_server import make_project
from tests.test_train_kill_rerun import LABELLED, _labels_file

pytest.importorskip("coder.embedded.classifier", reason="the local backend is not available")


def _models(db: Path) -> list[dict[str, object]]:
    result = CliRunner().invoke(cli, ["models", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_models_lists_records_and_reruns_do_not_duplicate(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    make_project(db, n=12).close()
    assert _models(db) == []
    labels = _labels_file(tmp_path / "labels.jsonl")
    train = ["train", "--db", str(db), "--from-file", str(labels)]
    result = CliRunner().invoke(cli, train)
    assert result.exit_code == 0, result.output

    (record,) = _models(db)
    assert record["active"] is True and record["format"] == "npz+json v1"
    assert record["codebook_version"] == 1 and record["seed"] == 0
    examples = record["examples"]
    assert isinstance(examples, dict) and examples["total"] == len(LABELLED)
    expected_themes: dict[str, int] = {}
    for _, _, themes, _ in LABELLED:
        for code in themes:
            expected_themes[code] = expected_themes.get(code, 0) + 1
    assert examples["themes"] == dict(sorted(expected_themes.items()))
    assert sum(examples["stance"].values()) == len(LABELLED)
    assert record["libraries"]["numpy"] == numpy.__version__  # type: ignore[index]
    assert set(record["cv"]) == {"themes", "stance", "relevance"}  # type: ignore[arg-type]
    assert record["fields"]["themes"] in record["cv"]["themes"]  # type: ignore[index]

    # The same labels again: same version, one row, and no second proposal from it.
    result = CliRunner().invoke(cli, train)
    assert result.exit_code == 0, result.output
    (again,) = _models(db)
    assert again["version"] == record["version"] and again["active"] is True
    with Store(db) as store:
        twice = store.db.execute(
            "select count(*) from (select response_id from proposals where model_version = ? "
            "group by response_id having count(*) > 1)",
            [record["version"]],
        ).fetchone()[0]
    assert twice == 0

    # Different labels: a second model, now the active one.
    fewer = tmp_path / "fewer.jsonl"
    fewer.write_text("".join(labels.read_text().splitlines(keepends=True)[:-4]))
    assert CliRunner().invoke(cli, ["train", "--db", str(db), "--from-file", str(fewer)]).exit_code == 0
    first, second = _models(db)
    assert first["active"] is False and second["active"] is True
    table = CliRunner().invoke(cli, ["models", "--db", str(db)])
    assert table.exit_code == 0 and table.output.count("yes") == 1


def test_models_on_a_missing_project_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["models", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 1 and "no such project file" in result.output
    assert not (tmp_path / "none.db").exists()
