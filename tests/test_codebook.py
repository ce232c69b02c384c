"""Codebook loading, checking, versioning and the published JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.codebook import builtin_codebook_path, codebook_json_schema, load_codebook
from coder.errors import CodebookError
from coder.store import Store
from tests.conftest import REPO, shared_path

BAD_CODEBOOK = """
name: broken
questions:
  - {id: H1, text: "First"}
  - {id: H1, text: "Again"}
themes:
  - {id: a, label: A, definition: "Something"}
  - {id: a, label: A2, definition: "Dup"}
  - {id: b, label: B, definition: "  ", parent: nowhere}
  - {id: c, label: C, definition: "C", parent: d}
  - {id: d, label: D, definition: "D", parent: c}
  - {id: e, label: E, definition: "E", questions: [H7]}
"""


def test_builtin_codebook_has_the_seed_hypotheses() -> None:
    codebook = load_codebook(builtin_codebook_path())
    assert codebook.question_ids == [f"H{i}" for i in range(1, 10)] + ["Q10"]
    assert "policy levers that align with local needs" in codebook.question("H2").text
    ids = set(codebook.theme_ids)
    for expected in ("short_term_complexity", "adaptability_to_place", "moving_to_bau",
                     "patient_community_voice", "financial_stability", "health_inequalities",
                     "evidence_efficacy_roi", "informal_workforce_networks", "fidelity_vs_adaptation"):
        assert expected in ids
    assert all(theme.definition.strip() for theme in codebook.themes)
    assert codebook.theme("sharing_learning").parent == "process"
    assert codebook.stance_ids == ["resonates", "partly", "does_not_resonate", "unclear"]


def test_check_reports_every_problem_with_paths(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CODEBOOK)
    with pytest.raises(CodebookError) as info:
        load_codebook(path)
    problems = info.value.problems
    text = "\n".join(problems)
    assert "questions[1] (id 'H1').id: duplicate question id" in text
    assert "themes[1] (id 'a').id: duplicate theme id" in text
    assert "themes[2] (id 'b').definition: empty definition" in text
    assert "themes[2] (id 'b').parent: unknown parent theme 'nowhere'" in text
    assert "parent cycle" in text
    assert "themes[5] (id 'e').questions[0]: applies to unknown question 'H7'" in text
    assert len(problems) == 6


def test_codebook_check_cli_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(cli, ["codebook", "check", str(builtin_codebook_path())])
    assert good.exit_code == 0, good.output
    assert "23 themes" in good.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CODEBOOK)
    result = runner.invoke(cli, ["codebook", "check", str(bad)])
    assert result.exit_code == 1
    assert str(bad) in result.output and "duplicate theme id" in result.output


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nthemes: [\n  - id: a\n")
    with pytest.raises(CodebookError) as info:
        load_codebook(path)
    assert "invalid YAML at line" in str(info.value)
    assert str(path) in str(info.value)


def test_missing_required_field_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    path.write_text("name: x\nthemes:\n  - {id: a, label: A}\n")
    with pytest.raises(CodebookError) as info:
        load_codebook(path)
    assert "themes[0] (id 'a').definition: Field required" in str(info.value)


@pytest.mark.parametrize("name", ["nhs_pxtextmining_v6", "argkp_2021"])
def test_gold_codebooks_load_without_conversion(name: str) -> None:
    path = shared_path("gold", name, "codebook.json")
    codebook = load_codebook(path)
    raw = json.loads(path.read_text())
    assert len(codebook.themes) == len(raw["codes"])
    grouped = [code for code in raw["codes"] if code.get("group")]
    for code in grouped[:5]:
        assert codebook.theme(code["id"]).questions == [code["group"]]
    assert codebook.stance_ids == raw["stance"]["values"]


def test_codebook_versions_in_store(tmp_path: Path, db_path: Path) -> None:
    codebook = load_codebook(builtin_codebook_path())
    with Store(db_path) as store:
        first = store.save_codebook(codebook)
        assert store.save_codebook(codebook) == first
        changed = codebook.model_copy(deep=True)
        changed.themes[0].definition += " Changed."
        second = store.save_codebook(changed)
        assert second == first + 1
        version, latest = store.codebook()
        assert version == second and latest.themes[0].definition.endswith("Changed.")
        assert store.codebook(first)[1] == codebook


def test_published_json_schema_is_current() -> None:
    published = json.loads((REPO / "schemas" / "codebook.schema.json").read_text())
    assert published == codebook_json_schema(), "run: coder codebook schema --out schemas/codebook.schema.json"


def test_codebook_add_and_show_cli(db_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["codebook", "add", "--example", "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert "version 1" in result.output
    again = runner.invoke(cli, ["codebook", "add", "--example", "--db", str(db_path)])
    assert "unchanged" in again.output
    shown = runner.invoke(cli, ["codebook", "show", "--db", str(db_path)])
    assert "short_term_complexity" in shown.output
