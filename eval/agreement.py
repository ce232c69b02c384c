"""Agreement coefficients for single-label fields (stance, hypothesis, relevance).

Every coefficient here is written as a function of *additive sufficient statistics*
(per-unit contributions that are summed over units). The point estimate sums them over
all units; the bootstrap (``eval.bootstrap``) sums them with resampling weights, so the
same code computes both and a 1,000-resample CI costs one matrix product.

Conventions (see /work/shared/reference/agreement/pitfalls.md; each one is tested in
tests/test_agreement_metrics.py):

* **Missing data.** A missing value (``None``, ``NaN``, blank cell) is *left out*; it is
  never a category (pitfall 1). Cohen's kappa, Scott's pi and pairwise percent agreement
  use only units both coders coded (listwise deletion per pair).
* **Units with one coder.** Krippendorff's alpha drops unpairable units (by definition).
  Gwet's AC1 and the generalised Fleiss' kappa follow Gwet (2014) / irrCAC: such units are
  left out of observed agreement but kept in the chance term's category proportions
  (pitfall 2). Two-coder pi / kappa / AC1 computed from a pair only see jointly coded units.
* **Ordinal alpha** uses Krippendorff's marginal-frequency ordinal metric (Krippendorff
  2011: 0.815 on his 4x12 data), not rank weights (pitfall 3).
* **Weighted kappa's category set.** Weights are built from the *full* category list
  passed in ``categories`` (e.g. the codebook's stance scale), not from the levels that
  happen to occur (pitfall 4). Pass ``categories`` whenever you know the scale; without it
  the sorted observed values are used and the result is labelled as such by the caller.
  The same list fixes q, the number of categories, in Gwet's AC1 chance term.
* **No variation (degenerate data).** When expected disagreement is zero (every value is
  identical, or only one category is possible), every chance-corrected coefficient is
  ``NaN`` ("undefined"), never 1 (pitfall 7). Percent agreement is still reported, so a
  reader sees "100% agreement, kappa undefined" rather than a misleading 1 or 0 (pitfall 8).
* No pairable units at all → ``NaN``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.metrics import cohen_kappa_score

from eval import bootstrap

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[str, ...] = ("nominal", "ordinal", "interval", "ratio")


def is_missing(value: object) -> bool:
    """True for the values that mean "not coded": None, NaN and blank strings."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


# --- reliability data -------------------------------------------------------------------
@dataclass
class ReliabilityData:
    """Coders x units values as category indices: ``codes[i, u]`` is -1 when missing."""

    codes: np.ndarray  # int, shape (n_coders, n_units)
    categories: list[Hashable]
    coders: list[str]
    units: list[str]

    @property
    def counts(self) -> np.ndarray:
        """Units x categories: how many coders gave each category to each unit."""
        n_units, n_categories = self.codes.shape[1], len(self.categories)
        counts = np.zeros((n_units, n_categories), dtype=np.float64)
        coder_idx, unit_idx = np.nonzero(self.codes >= 0)
        np.add.at(counts, (unit_idx, self.codes[coder_idx, unit_idx]), 1.0)
        return counts


def reliability_data(
    matrix: Sequence[Sequence[object]],
    categories: Sequence[Hashable] | None = None,
    coders: Sequence[str] | None = None,
    units: Sequence[str] | None = None,
) -> ReliabilityData:
    """Build :class:`ReliabilityData` from a coders x units matrix with missing values.

    ``categories`` fixes the full, ordered category set; values outside it raise
    ValueError. Without it the observed values are used, sorted.
    """
    rows = [list(row) for row in matrix]
    if not rows:
        raise ValueError("no coders")
    width = len(rows[0])
    if any(len(row) != width for row in rows):
        raise ValueError("every coder's row must have one cell per unit")
    observed = {value for row in rows for value in row if not is_missing(value)}
    if categories is None:
        cats: list[Hashable] = sorted(observed, key=_sort_key)  # type: ignore[arg-type]
    else:
        cats = list(categories)
        unknown = observed - set(cats)
        if unknown:
            raise ValueError(f"values not in the category set: {sorted(map(str, unknown))}")
    index = {category: i for i, category in enumerate(cats)}
    codes = np.full((len(rows), width), -1, dtype=np.int64)
    for i, row in enumerate(rows):
        for u, value in enumerate(row):
            if not is_missing(value):
                codes[i, u] = index[value]  # type: ignore[index]
    return ReliabilityData(
        codes=codes,
        categories=cats,
        coders=list(coders) if coders is not None else [f"coder{i + 1}" for i in range(len(rows))],
        units=list(units) if units is not None else [str(u) for u in range(width)],
    )


def _sort_key(value: object) -> tuple[int, float, str]:
    if isinstance(value, bool):
        return (1, 0.0, str(value))
    if isinstance(value, int | float):
        return (0, float(value), "")
    return (1, 0.0, str(value))


# --- Krippendorff's alpha ---------------------------------------------------------------
def unit_coincidences(counts: np.ndarray) -> np.ndarray:
    """Per-unit coincidence matrices (units x k x k); unpairable units contribute zeros."""
    m = counts.sum(axis=1)
    pairable = m >= 2
    outer = counts[:, :, None] * counts[:, None, :]
    diag = np.zeros_like(outer)
    idx = np.arange(counts.shape[1])
    diag[:, idx, idx] = counts
    scale = np.zeros_like(m)
    scale[pairable] = 1.0 / (m[pairable] - 1.0)
    return (outer - diag) * scale[:, None, None]


def coincidence_matrix(counts: np.ndarray) -> np.ndarray:
    """The k x k coincidence matrix summed over units, without a units x k x k array."""
    m = counts.sum(axis=1)
    scale = np.zeros_like(m)
    pairable = m >= 2
    scale[pairable] = 1.0 / (m[pairable] - 1.0)
    weighted = counts * np.sqrt(scale)[:, None]
    return weighted.T @ weighted - np.diag((counts * scale[:, None]).sum(axis=0))


def delta_squared(
    level: str, categories: Sequence[Hashable], marginals: np.ndarray | None = None
) -> np.ndarray:
    """Krippendorff's squared difference function for a level of measurement.

    ``marginals`` (the coincidence marginals n_c) are needed for ``ordinal`` and may
    carry a leading batch axis (bootstrap), giving one matrix per batch row.
    """
    k = len(categories)
    if level == "nominal":
        return 1.0 - np.eye(k)
    if level == "ordinal":
        if marginals is None:
            raise ValueError("ordinal alpha needs the coincidence marginals")
        n = np.asarray(marginals, dtype=np.float64)
        cum = np.cumsum(n, axis=-1)
        # sum_{g=c..k} n_g - (n_c + n_k)/2, for c <= k, symmetric
        lo = np.minimum.outer(np.arange(k), np.arange(k))
        hi = np.maximum.outer(np.arange(k), np.arange(k))
        before_lo = np.where(lo > 0, np.take(cum, np.maximum(lo - 1, 0), axis=-1), 0.0)
        span = np.take(cum, hi, axis=-1) - before_lo
        d = span - (np.take(n, lo, axis=-1) + np.take(n, hi, axis=-1)) / 2.0
        return d**2
    values = np.array([float(c) for c in categories])  # type: ignore[arg-type]
    diff = values[:, None] - values[None, :]
    if level == "interval":
        return diff**2
    if level == "ratio":
        total = values[:, None] + values[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(total == 0, 0.0, (diff / np.where(total == 0, 1, total)) ** 2)
        return out
    raise ValueError(f"unknown level {level!r}: choose one of {', '.join(LEVELS)}")


def alpha_from_coincidences(
    coincidences: np.ndarray, level: str, categories: Sequence[Hashable]
) -> np.ndarray:
    """Alpha from (batched) coincidence matrices ``(..., k, k)``; NaN when undefined."""
    o = np.asarray(coincidences, dtype=np.float64)
    n_c = o.sum(axis=-1)
    n = n_c.sum(axis=-1)
    delta = delta_squared(level, categories, n_c if level == "ordinal" else None)
    d_o = (o * delta).sum(axis=(-2, -1))
    expected = n_c[..., :, None] * n_c[..., None, :] * delta
    d_e = expected.sum(axis=(-2, -1)) / np.maximum(n - 1.0, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 1.0 - d_o / d_e
    return np.where((d_e <= 1e-15) | (n < 2), np.nan, alpha)


def krippendorff_alpha(
    matrix: Sequence[Sequence[object]] | ReliabilityData,
    level: str = "nominal",
    categories: Sequence[Hashable] | None = None,
) -> float:
    """Krippendorff's alpha for a coders x units matrix with missing values (None/NaN).

    Levels: nominal, ordinal (marginal-frequency metric), interval, ratio.
    Unpairable units (fewer than two values) are dropped; degenerate data gives NaN.
    """
    data = matrix if isinstance(matrix, ReliabilityData) else reliability_data(matrix, categories)
    if level in ("interval", "ratio"):
        try:
            [float(c) for c in data.categories]  # type: ignore[arg-type]
        except (TypeError, ValueError) as error:
            raise ValueError(f"{level} alpha needs numeric values: {error}") from None
    o = coincidence_matrix(data.counts)
    return float(alpha_from_coincidences(o, level, data.categories))


# --- many coders: Fleiss' kappa, Gwet's AC1, percent agreement ----------------------------
def unit_agreement_stats(counts: np.ndarray) -> np.ndarray:
    """Per-unit additive statistics for Gwet-style multi-coder coefficients.

    Columns: [pairable (r>=2), observed agreement p_a,i, rated (r>=1), r_ik/r_i ...].
    """
    r = counts.sum(axis=1)
    pairable = r >= 2
    rated = r >= 1
    with np.errstate(divide="ignore", invalid="ignore"):
        p_a = np.where(
            pairable, (counts * (counts - 1)).sum(axis=1) / np.maximum(r * (r - 1), 1), 0.0
        )
        share = np.where(rated[:, None], counts / np.maximum(r, 1)[:, None], 0.0)
    return np.column_stack([pairable.astype(float), p_a, rated.astype(float), share])


def _multi_from_stats(sums: np.ndarray, kind: str) -> np.ndarray:
    sums = np.asarray(sums, dtype=np.float64)
    n_pairable, p_a_sum, n_rated, shares = sums[..., 0], sums[..., 1], sums[..., 2], sums[..., 3:]
    q = shares.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        p_a = p_a_sum / n_pairable
        pi_k = shares / n_rated[..., None]
        if kind == "percent":
            return p_a
        if kind == "fleiss":
            p_e = (pi_k**2).sum(axis=-1)
        elif kind == "ac1":
            p_e = (pi_k * (1 - pi_k)).sum(axis=-1) / (q - 1) if q > 1 else np.ones_like(p_a)
        else:
            raise ValueError(kind)
        value = (p_a - p_e) / (1 - p_e)
    return np.where((np.abs(1 - p_e) <= 1e-15) | (n_pairable < 1), np.nan, value)


def fleiss_kappa(
    matrix: Sequence[Sequence[object]] | ReliabilityData,
    categories: Sequence[Hashable] | None = None,
) -> float:
    """Fleiss' kappa, generalised to missing data as in Gwet (2014) / irrCAC ``fleiss.raw``.

    With the same number of coders on every unit this is the classic Fleiss (1971) kappa.
    """
    data = matrix if isinstance(matrix, ReliabilityData) else reliability_data(matrix, categories)
    return float(_multi_from_stats(unit_agreement_stats(data.counts).sum(axis=0), "fleiss"))


def fleiss_kappa_from_counts(counts: Sequence[Sequence[float]]) -> float:
    """Fleiss' kappa from a subjects x categories table of rater counts."""
    table = np.asarray(counts, dtype=np.float64)
    return float(_multi_from_stats(unit_agreement_stats(table).sum(axis=0), "fleiss"))


def gwet_ac1(
    matrix: Sequence[Sequence[object]] | ReliabilityData,
    categories: Sequence[Hashable] | None = None,
) -> float:
    """Gwet's AC1 for any number of coders with missing data (Gwet 2014, irrCAC).

    q is the size of the category set (pass the full scale in ``categories``).
    """
    data = matrix if isinstance(matrix, ReliabilityData) else reliability_data(matrix, categories)
    return float(_multi_from_stats(unit_agreement_stats(data.counts).sum(axis=0), "ac1"))


def percent_agreement_multi(
    matrix: Sequence[Sequence[object]] | ReliabilityData,
    categories: Sequence[Hashable] | None = None,
) -> float:
    """Mean pairwise agreement over units with at least two values."""
    data = matrix if isinstance(matrix, ReliabilityData) else reliability_data(matrix, categories)
    return float(_multi_from_stats(unit_agreement_stats(data.counts).sum(axis=0), "percent"))


# --- two coders: contingency-table coefficients --------------------------------------------
def contingency(
    first: Sequence[object], second: Sequence[object], categories: Sequence[Hashable]
) -> np.ndarray:
    """k x k table of (first, second) pairs over units both coded."""
    index = {category: i for i, category in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)), dtype=np.float64)
    for a, b in zip(first, second, strict=True):
        if is_missing(a) or is_missing(b):
            continue
        table[index[a], index[b]] += 1  # type: ignore[index]
    return table


def kappa_weights(k: int, weights: str | None) -> np.ndarray:
    """Disagreement weights over k ordered categories (0 on the diagonal)."""
    i = np.arange(k)
    d = np.abs(i[:, None] - i[None, :]).astype(np.float64)
    if weights in (None, "none", "unweighted"):
        return (d > 0).astype(np.float64)
    scale = max(k - 1, 1)
    if weights == "linear":
        return d / scale
    if weights == "quadratic":
        return (d / scale) ** 2
    raise ValueError(f"unknown weights {weights!r}: none, linear or quadratic")


def table_coefficients(tables: np.ndarray, kind: str, weights: str | None = None) -> np.ndarray:
    """Two-coder coefficients from (batched) k x k contingency tables.

    kind: 'percent', 'cohen', 'scott', 'ac1'. NaN when undefined (pitfall 7).
    """
    t = np.asarray(tables, dtype=np.float64)
    n = t.sum(axis=(-2, -1))
    k = t.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = t / n[..., None, None]
        row = p.sum(axis=-1)
        col = p.sum(axis=-2)
        if kind == "percent":
            return np.where(n > 0, np.trace(p, axis1=-2, axis2=-1), np.nan)
        if kind == "cohen":
            w = kappa_weights(k, weights)
            observed = (p * w).sum(axis=(-2, -1))
            expected = (row[..., :, None] * col[..., None, :] * w).sum(axis=(-2, -1))
            value = 1.0 - observed / expected
            undefined = expected <= 1e-15
        else:
            p_o = np.trace(p, axis1=-2, axis2=-1)
            pi = (row + col) / 2.0
            if kind == "scott":
                p_e = (pi**2).sum(axis=-1)
            elif kind == "ac1":
                p_e = (pi * (1 - pi)).sum(axis=-1) / (k - 1) if k > 1 else np.ones_like(p_o)
            else:
                raise ValueError(kind)
            value = (p_o - p_e) / (1.0 - p_e)
            undefined = np.abs(1.0 - p_e) <= 1e-15
    return np.where(undefined | (n < 1), np.nan, value)


def expand_table(table: Sequence[Sequence[float]]) -> tuple[list[int], list[int]]:
    """Item-level (first, second) category indices from a contingency table."""
    first: list[int] = []
    second: list[int] = []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            first += [i] * int(count)
            second += [j] * int(count)
    return first, second


def cohen_kappa(
    first: Sequence[object],
    second: Sequence[object],
    categories: Sequence[Hashable] | None = None,
    weights: str | None = None,
) -> float:
    """Cohen's kappa (scikit-learn), over units both coded.

    ``weights`` None/'linear'/'quadratic'; weights come from the full ``categories`` list
    in its order (pitfall 4), so pass the scale in order for weighted kappa.
    """
    pairs = [
        (a, b)
        for a, b in zip(first, second, strict=True)
        if not is_missing(a) and not is_missing(b)
    ]
    if not pairs:
        return math.nan
    cats = (
        list(categories)
        if categories is not None
        else sorted({v for pair in pairs for v in pair}, key=_sort_key)  # type: ignore[arg-type]
    )
    index = {category: i for i, category in enumerate(cats)}
    y1 = [index[a] for a, _ in pairs]  # type: ignore[index]
    y2 = [index[b] for _, b in pairs]  # type: ignore[index]
    # scikit-learn warns and returns nan/0 on degenerate tables; we decide ourselves
    table = contingency(y1, y2, list(range(len(cats))))
    if np.isnan(table_coefficients(table, "cohen", weights)):
        return math.nan
    return float(
        cohen_kappa_score(y1, y2, labels=list(range(len(cats))), weights=_sk_weights(weights))
    )


def _sk_weights(weights: str | None) -> str | None:
    return None if weights in (None, "none", "unweighted") else weights


def scott_pi(
    first: Sequence[object], second: Sequence[object], categories: Sequence[Hashable] | None = None
) -> float:
    """Scott's pi over units both coded (pooled marginals)."""
    cats = _pair_categories(first, second, categories)
    return float(table_coefficients(contingency(first, second, cats), "scott"))


def gwet_ac1_pair(
    first: Sequence[object], second: Sequence[object], categories: Sequence[Hashable] | None = None
) -> float:
    """Gwet's AC1 for two coders over units both coded; q = len(categories)."""
    cats = _pair_categories(first, second, categories)
    return float(table_coefficients(contingency(first, second, cats), "ac1"))


def percent_agreement(first: Sequence[object], second: Sequence[object]) -> float:
    """Share of units both coded on which the two coders agree."""
    pairs = [
        (a, b)
        for a, b in zip(first, second, strict=True)
        if not is_missing(a) and not is_missing(b)
    ]
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else math.nan


def _pair_categories(
    first: Sequence[object], second: Sequence[object], categories: Sequence[Hashable] | None
) -> list[Hashable]:
    if categories is not None:
        return list(categories)
    observed = {v for v in list(first) + list(second) if not is_missing(v)}
    return sorted(observed, key=_sort_key)  # type: ignore[arg-type]


def confusion_matrix(
    gold: Sequence[object], predicted: Sequence[object], categories: Sequence[Hashable]
) -> list[list[int]]:
    """Rows = gold, columns = predicted, in ``categories`` order (missing pairs left out)."""
    return contingency(gold, predicted, categories).astype(int).tolist()


# --- two coders with confidence intervals (the assignment's overlap) -------------------------
def pair_agreement(
    first: Sequence[object],
    second: Sequence[object],
    categories: Sequence[Hashable] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, object]:
    """Percent agreement, Cohen's kappa, Gwet's AC1 (each with a bootstrap 95% CI) and
    Krippendorff's alpha for two coders over the units both coded.

    Each unit contributes a one-hot k x k contingency table, so the bootstrap resamples
    units (``eval.bootstrap``). ``categories`` fixes the scale (kappa's and AC1's q).
    """
    pairs = [(a, b) for a, b in zip(first, second, strict=True) if not is_missing(a) and not is_missing(b)]
    cats = _pair_categories([a for a, _ in pairs], [b for _, b in pairs], categories)
    cats += sorted({v for pair in pairs for v in pair} - set(cats), key=_sort_key)  # type: ignore[arg-type]
    k = len(cats)
    out: dict[str, object] = {"n_items": len(pairs), "ci": {}}
    if not pairs or k == 0:
        return out
    index = {category: i for i, category in enumerate(cats)}
    stats = np.zeros((len(pairs), k * k))
    for row, (a, b) in enumerate(pairs):
        stats[row, index[a] * k + index[b]] = 1.0  # type: ignore[index]
    cis: dict[str, tuple[float, float]] = {}
    for name, kind in (("percent_agreement", "percent"), ("kappa", "cohen"), ("ac1", "ac1")):
        def statistic(sums: np.ndarray, kind: str = kind) -> np.ndarray:
            return table_coefficients(sums.reshape(*sums.shape[:-1], k, k), kind)

        out[name] = float(statistic(stats.sum(axis=0)))
        cis[name] = bootstrap.bootstrap_ci(stats, statistic, n_resamples, seed)
    out["alpha"] = krippendorff_alpha([[a for a, _ in pairs], [b for _, b in pairs]], categories=cats)
    out["ci"] = cis
    return out
