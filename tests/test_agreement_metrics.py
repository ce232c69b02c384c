"""Agreement metrics against published values, and the pitfall conventions (eval/*)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eval import agreement, bootstrap, calibration, matching, multilabel

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference" / "agreement"


def _index() -> list[str]:
    if not (REFERENCE / "index.json").is_file():
        return []
    return [entry["file"] for entry in json.loads((REFERENCE / "index.json").read_text())]


def _units_from_triples(triples: list[list[Any]]) -> list[list[Any]]:
    coders = list(dict.fromkeys(t[0] for t in triples))
    items = list(dict.fromkeys(t[1] for t in triples))
    cells = {(t[0], t[1]): t[2] for t in triples}
    return [[cells.get((c, i)) for c in coders] for i in items]


def compute_case(case: dict[str, Any]) -> float:
    """Our value for one reference case, chosen from its metric name and data layout."""
    metric = case["metric"].lower()
    data = case["data"]
    level = case.get("level_of_measurement", "nominal")
    if "masi distance" == metric:
        return multilabel.masi_distance(data["label1"], data["label2"])
    if "mv-alpha" in metric:
        return multilabel.mv_alpha(data["units"])
    if "masi" in metric:
        return multilabel.set_alpha(_units_from_triples(data["triples"]), "masi")
    if "fleiss" in metric:
        return agreement.fleiss_kappa_from_counts(data["counts"])
    if "table" in data:
        first, second = agreement.expand_table(data["table"])
        categories = list(range(len(data["table"])))
        if "krippendorff" in metric:
            return agreement.krippendorff_alpha([first, second], "nominal", categories)
        if "scott" in metric:
            return agreement.scott_pi(first, second, categories)
        if "ac1" in metric:
            return agreement.gwet_ac1_pair(first, second, categories)
        if "cohen" in metric:
            weights = (
                "linear" if "linear" in metric else "quadratic" if "quadratic" in metric else None
            )
            return agreement.cohen_kappa(first, second, categories, weights=weights)
    if "krippendorff" in metric and "matrix" in data:
        return agreement.krippendorff_alpha(data["matrix"], level)
    raise AssertionError(f"no dispatch for reference case {case['metric']!r}")


@pytest.mark.parametrize("filename", _index() or ["<missing>"])
def test_reference_case(filename: str) -> None:
    if filename == "<missing>":
        pytest.skip(f"reference cases not found at {REFERENCE}")
    case = json.loads((REFERENCE / filename).read_text())
    value = compute_case(case)
    expected = case["published_value"]
    if case.get("match") is False and "published_value_note" in case:
        # the library-generated vector has a known bug baked in (crowd-kit's rounded MASI):
        # we must reproduce the corrected value, and must *not* reproduce the buggy one
        assert abs(value - expected) > case["match_tolerance"]
        assert value == pytest.approx(case["value_computed_here"], abs=1e-9)
        return
    assert value == pytest.approx(expected, abs=case["match_tolerance"]), filename


# --- pitfalls --------------------------------------------------------------------------
K2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def test_missing_values_are_never_a_category() -> None:
    """Pitfall 1: None, NaN and blanks are left out, so all three give 0.743."""
    with_nan = [[math.nan if v is None else v for v in row] for row in K2011]
    as_text = [["" if v is None else str(v) for v in row] for row in K2011]
    for data in (K2011, with_nan, as_text):
        assert agreement.krippendorff_alpha(data) == pytest.approx(0.743, abs=5e-4)


def test_single_coder_units_drop_out_of_alpha_but_count_in_ac1_chance() -> None:
    """Pitfall 2: unit 12 (one value) changes neither alpha; AC1 keeps it in pi_k."""
    without = [row[:11] for row in K2011]
    assert agreement.krippendorff_alpha(K2011) == pytest.approx(
        agreement.krippendorff_alpha(without)
    )
    assert agreement.gwet_ac1(K2011) != pytest.approx(agreement.gwet_ac1(without), abs=1e-6)
    # percent agreement (observed) ignores the single-rated unit
    assert agreement.percent_agreement_multi(K2011) == pytest.approx(
        agreement.percent_agreement_multi(without)
    )


def test_ordinal_alpha_is_krippendorffs_marginal_metric() -> None:
    """Pitfall 3: Krippendorff (2011) ordinal 0.815, ratio 0.797 (not rank weights 0.834)."""
    assert agreement.krippendorff_alpha(K2011, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert agreement.krippendorff_alpha(K2011, "ratio") == pytest.approx(0.797, abs=5e-4)


def test_weighted_kappa_uses_the_full_category_set() -> None:
    """Pitfall 4: an unused scale point changes weighted kappa; we use the full set given."""
    first = [1, 2, 2, 3, 4, 6, 6, 1]
    second = [1, 3, 2, 4, 4, 6, 4, 2]
    observed_only = agreement.cohen_kappa(first, second, weights="linear")
    full_scale = agreement.cohen_kappa(
        first, second, categories=[1, 2, 3, 4, 5, 6], weights="linear"
    )
    assert observed_only != pytest.approx(full_scale)
    # unweighted kappa does not depend on unused categories
    assert agreement.cohen_kappa(first, second) == pytest.approx(
        agreement.cohen_kappa(first, second, categories=[1, 2, 3, 4, 5, 6])
    )


def test_masi_exact_thirds_and_empty_sets() -> None:
    """Pitfall 5: exact 2/3 and 1/3; δ({},{}) = 0, δ({},X) = 1."""
    assert multilabel.masi_distance({"a"}, {"a", "b"}) == pytest.approx(1 - 0.5 * 2 / 3)
    assert multilabel.masi_distance({"a", "b"}, {"b", "c"}) == pytest.approx(1 - (1 / 3) * (1 / 3))
    assert multilabel.masi_distance(set(), set()) == 0.0
    assert multilabel.masi_distance(set(), {"a"}) == 1.0
    assert multilabel.jaccard([], []) == 1.0
    stats = multilabel.item_stats(np.zeros((1, 2)), np.zeros((1, 2)))
    assert stats[0, 3] == 1.0 and stats[0, 5] == 1.0  # item F1 and exact match


def test_mv_alpha_is_not_alpha_with_a_set_distance() -> None:
    """Pitfall 6: on Table 3, mv-alpha 0.2866 vs standard alpha with Dice 0.3438."""
    units = [
        [["b", "d"], ["d"], None],
        [["a", "b", "d"], ["b"], ["b", "d"]],
        [[], ["a"], ["a"]],
        [["a"], None, None],
    ]
    assert multilabel.mv_alpha(units) == pytest.approx(0.2866, abs=6e-4)
    assert multilabel.set_alpha(units, "dice") == pytest.approx(0.34375, abs=1e-9)


def test_mv_alpha_scales_to_many_labels() -> None:
    rng = np.random.default_rng(3)
    labels = [f"c{i}" for i in range(48)]
    units = []
    for _ in range(300):
        base = set(rng.choice(labels, size=rng.integers(0, 5), replace=False).tolist())
        other = set(base)
        if rng.random() < 0.3:
            other.add(str(rng.choice(labels)))
        units.append([sorted(base), sorted(other)])
    start = time.perf_counter()
    value = multilabel.mv_alpha(units)
    assert 0 < value <= 1
    assert time.perf_counter() - start < 5


def test_degenerate_data_is_nan() -> None:
    """Pitfall 7: no variation -> NaN for every chance-corrected coefficient; 100% agreement."""
    same = [["a"] * 5, ["a"] * 5]
    assert math.isnan(agreement.krippendorff_alpha(same))
    assert math.isnan(agreement.cohen_kappa(same[0], same[1]))
    assert math.isnan(agreement.scott_pi(same[0], same[1]))
    assert math.isnan(agreement.fleiss_kappa(same))
    assert agreement.percent_agreement(same[0], same[1]) == 1.0
    assert math.isnan(multilabel.set_alpha([[["x"], ["x"]], [["x"], ["x"]]]))


def test_high_agreement_can_give_low_kappa() -> None:
    """Pitfall 8: skewed prevalence; we report percent agreement beside kappa."""
    first = ["no"] * 99 + ["yes"]
    second = ["no"] * 100
    assert agreement.percent_agreement(first, second) == 0.99
    assert agreement.cohen_kappa(first, second) == pytest.approx(0.0)


def test_scott_pi_below_alpha_on_two_coders() -> None:
    """Pitfall 9: alpha = pi + small-sample correction."""
    first, second = agreement.expand_table([[13, 0, 0], [0, 20, 7], [0, 4, 56]])
    assert agreement.krippendorff_alpha([first, second]) > agreement.scott_pi(first, second)


# --- properties ------------------------------------------------------------------------
def test_coefficients_are_one_on_perfect_agreement_and_symmetric() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        first = rng.integers(0, 4, size=30).tolist()
        second = [v if rng.random() < 0.7 else int(rng.integers(0, 4)) for v in first]
        cats = [0, 1, 2, 3]
        if len(set(first)) > 1:
            assert agreement.cohen_kappa(first, first, cats) == pytest.approx(1.0)
            assert agreement.krippendorff_alpha([first, first]) == pytest.approx(1.0)
        assert agreement.cohen_kappa(first, second, cats) == pytest.approx(
            agreement.cohen_kappa(second, first, cats)
        )
        assert agreement.scott_pi(first, second, cats) == pytest.approx(
            agreement.scott_pi(second, first, cats)
        )
        # two coders, complete data: Fleiss = Scott's pi (they share the chance model)
        assert agreement.fleiss_kappa([first, second], cats) == pytest.approx(
            agreement.scott_pi(first, second, cats)
        )


def test_sklearn_agrees_with_table_kappa() -> None:
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(1)
    first = rng.integers(0, 5, size=200)
    second = np.where(rng.random(200) < 0.6, first, rng.integers(0, 5, size=200))
    table = agreement.contingency(first.tolist(), second.tolist(), list(range(5)))
    for weights in (None, "linear", "quadratic"):
        ours = float(agreement.table_coefficients(table, "cohen", weights))
        assert ours == pytest.approx(cohen_kappa_score(first, second, weights=weights))


# --- bootstrap, calibration, matching ------------------------------------------------------
def test_bootstrap_is_seeded_and_covers_the_estimate() -> None:
    rng = np.random.default_rng(2)
    gold = (rng.random((500, 10)) < 0.2).astype(float)
    pred = np.where(rng.random((500, 10)) < 0.85, gold, 1 - gold)
    stats = multilabel.item_stats(gold, pred)

    def micro(s: np.ndarray) -> np.ndarray:
        return multilabel.set_metrics_from_sums(s, 500.0)["micro_f1"]

    first = bootstrap.bootstrap_ci(stats, micro, seed=5)
    again = bootstrap.bootstrap_ci(stats, micro, seed=5)
    assert first == again
    estimate = float(micro(stats.sum(axis=0)))
    assert first[0] < estimate < first[1]




def test_expected_calibration_error() -> None:
    perfect = calibration.calibration([0.25] * 4 + [0.75] * 4, [1, 0, 0, 0, 1, 1, 1, 0])
    assert perfect["ece"] == pytest.approx(0.0)
    over = calibration.calibration([0.9] * 10, [1] * 5 + [0] * 5)
    assert over["ece"] == pytest.approx(0.4)
    assert sum(b["n"] for b in over["bins"]) == 10


def test_kpa_map_strict_and_relaxed() -> None:
    items = [
        matching.MatchItem(
            f"a{i}", "m", "pro", frozenset({"k1"}) if i < 2 else frozenset(), frozenset({"k2"})
        )
        for i in range(8)
    ]
    # top half by score: a0 (k1, match), a2 (k2, uncertain), a1 (k1 match), a3 (k2 uncertain)
    predictions = {
        "a0": ("k1", 0.9), "a2": ("k2", 0.8), "a1": ("k1", 0.7), "a3": ("k2", 0.6),
        "a4": ("k1", 0.1), "a5": ("k1", 0.1), "a6": ("k1", 0.1),
    }  # fmt: skip
    result = matching.kpa_map(items, predictions)
    # strict: labels 1,0,1,0 -> AP = (1/1 + 2/3)/2
    assert result["map_strict"] == pytest.approx((1 + 2 / 3) / 2)
    assert result["map_relaxed"] == pytest.approx(1.0)


def test_kpa_map_is_macro_over_motion_and_stance() -> None:
    items = [
        matching.MatchItem("p1", "m", "pro", frozenset({"k"}), frozenset()),
        matching.MatchItem("p2", "m", "pro", frozenset(), frozenset()),
        matching.MatchItem("c1", "m", "con", frozenset(), frozenset()),
        matching.MatchItem("c2", "m", "con", frozenset(), frozenset()),
    ]
    result = matching.kpa_map(items, {"p1": ("k", 0.9), "c1": ("k", 0.9)})
    assert result["n_groups"] == 2
    assert result["map_strict"] == pytest.approx(0.5)  # pro 1.0, con 0.0 (no match kept)
