"""Key-point matching compares an argument only with the key points of its own side."""

from __future__ import annotations

from eval.scoring import _stance_side
from schemas import Codebook, Question, StanceScale, StanceValue, Theme


def test_key_points_are_limited_to_the_arguments_stance() -> None:
    codebook = Codebook(
        name="kp",
        questions=[Question(id="m", text="motion")],
        themes=[
            Theme(id="p1", label="p1", definition="pro point", category="pro", questions=["m"]),
            Theme(id="c1", label="c1", definition="con point", category="con", questions=["m"]),
        ],
        stance=StanceScale(values=[StanceValue(id="pro"), StanceValue(id="con")]),
    )
    assert _stance_side(codebook, ["p1", "c1"], "con") == ["c1"]
    assert _stance_side(codebook, ["p1", "c1"], None) == ["p1", "c1"]


def test_codes_without_stance_categories_are_left_alone() -> None:
    codebook = Codebook(
        name="themes",
        themes=[Theme(id="a", label="a", definition="x", category="General")],
    )
    assert _stance_side(codebook, ["a"], "resonates") == ["a"]
