"""`coder codebook check` warns about themes whose definitions overlap (offline encoder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from coder.cli import cli
from coder.codebook import (
    OVERLAP_SMALL_CODEBOOK,
    builtin_codebook_path,
    load_codebook,
    overlapping_themes,
    theme_overlap,
    theme_text,
)
from schemas import Codebook, Question, Theme
from tests.conftest import shared_path

# A theme that restates informal_workforce_networks in other words, and a sub-theme that
# restates its parent (which overlaps by design and must not be reported).
RESTATED = {
    "id": "staff_networks",
    "label": "Staff networks and skills",
    "definition": "People in the workforce who drive improvement through informal networks, and "
                  "growing staff skills, training and capacity so they can adopt innovations.",
}
CHILD_OF_FINANCE = {
    "id": "recurrent_funding",
    "label": "Recurrent funding",
    "parent": "financial_stability",
    "definition": "Stable, recurrent, long-term funding and financial headroom so that organisations "
                  "can invest in adoption.",
}


def builtin_data() -> dict[str, Any]:
    data = yaml.safe_load(builtin_codebook_path().read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_check_names_the_overlapping_pair_and_exits_0(tmp_path: Path) -> None:
    data = builtin_data()
    data["themes"] += [RESTATED, CHILD_OF_FINANCE]
    path = tmp_path / "codebook.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    code, output = invoke("codebook", "check", str(path))
    assert code == 0, output
    assert "OK" in output and "1 pair(s) of themes overlap" in output
    lines = [line.split() for line in output.splitlines() if "~" in line]
    assert [(line[1], line[3]) for line in lines] == [("informal_workforce_networks", "staff_networks")]
    assert 0.6 < float(lines[0][0]) < 1
    assert "recurrent_funding" not in output  # a sub-theme restating its parent is by design
    code, output = invoke("codebook", "check", "--no-overlap", str(path))
    assert code == 0 and "~" not in output and "themes overlap" not in output


def test_builtin_codebook_has_no_overlap() -> None:
    code, output = invoke("codebook", "check", str(builtin_codebook_path()))
    assert code == 0, output
    assert "No overlapping themes (241 pairs compared" in output


def test_parent_child_and_disjoint_questions_are_not_compared() -> None:
    data = builtin_data()
    data["themes"].append(CHILD_OF_FINANCE)
    result = theme_overlap(Codebook.model_validate(data))
    assert result.pairs == []
    # the built-in codebook's 12, plus the new theme with its parent and grandparent
    assert result.skipped_parent_child == 14
    # Without the parent link the same text is an overlap with financial_stability.
    data["themes"][-1] = {**CHILD_OF_FINANCE, "parent": None}
    pairs = overlapping_themes(Codebook.model_validate(data))
    assert [(a, b) for a, b, _ in pairs] == [("financial_stability", "recurrent_funding")]


class FixedEncoder:
    """An encoder with given vectors: the threshold rules on known similarities."""

    name = "fixed"
    dim = 2

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def encode(self, texts: Any, batch_size: int = 64) -> np.ndarray:
        rows = np.array([self.vectors[text.split(".")[0]] for text in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def small_codebook(scopes: dict[str, list[str] | None]) -> Codebook:
    return Codebook(
        name="small",
        questions=[Question(id="Q1", text="one"), Question(id="Q2", text="two")],
        themes=[Theme(id=k, label=k, definition=f"about {k}", questions=v) for k, v in scopes.items()],
    )


def test_small_codebook_uses_the_fixed_threshold_and_skips_disjoint_scopes() -> None:
    # cos(a, b) = 0.8 (above 0.75), cos(a, c) = 0.7 (below); d is identical to a but
    # applies to another question, so it is never a candidate beside a (or c).
    angle_b, angle_c = np.arccos(0.8), np.arccos(0.7)
    encoder = FixedEncoder({
        "a": [1.0, 0.0], "b": [float(np.cos(angle_b)), float(np.sin(angle_b))],
        "c": [float(np.cos(angle_c)), -float(np.sin(angle_c))], "d": [1.0, 0.0],
    })
    codebook = small_codebook({"a": ["Q1"], "b": None, "c": ["Q1"], "d": ["Q2"]})
    result = theme_overlap(codebook, encoder)
    assert result.threshold == OVERLAP_SMALL_CODEBOOK
    assert result.compared == 4  # 6 pairs less a-d and c-d
    assert result.pairs == [("a", "b", 0.8), ("b", "d", 0.8)]


def test_theme_text_is_label_definition_and_include() -> None:
    theme = Theme(id="x", label="Funding.", definition="Money for adoption", include=["grants", ""],
                  exclude=["not this"])
    assert theme_text(theme) == "Funding. Money for adoption. grants"


@pytest.mark.parametrize("gold", ["nhs_pxtextmining_v6", "argkp_2021"])
def test_published_codebooks_stay_quiet(gold: str) -> None:
    """The relative threshold adapts: their designed near-neighbours are not reported."""
    codebook = load_codebook(shared_path("gold", gold, "codebook.json"))
    result = theme_overlap(codebook)
    assert result.pairs == [], result
    assert result.compared > 900
