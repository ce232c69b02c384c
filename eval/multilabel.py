"""Agreement and accuracy for multi-label theme coding (label sets).

Conventions (tested in tests/test_agreement_metrics.py):

* **Both coders assign no themes.** δ({}, {}) = 0 for MASI, Jaccard and Dice distances
  (the items agree); δ({}, X) = 1 for non-empty X. So Jaccard({}, {}) = 1, an item's F1
  with empty gold and empty prediction is 1, and exact-set match counts it as a match.
  This is mv-alpha's own rule (Krippendorff & Craggs 2016) and avoids nltk's
  ZeroDivisionError (pitfall 5).
* **MASI** uses Passonneau's exact constants 1, 2/3, 1/3, 0 (not nltk's old 0.67/0.33).
* **"alpha over label sets"** (:func:`set_alpha`) is standard Krippendorff's alpha whose
  values are whole label sets and whose δ is a set distance (MASI by default). It is *not*
  Krippendorff & Craggs' mv-alpha (:func:`mv_alpha`), whose expected disagreement is built
  from label frequencies over all combinations of the observed set sizes (pitfall 6);
  both are reported under their own names.
* **Per-code metrics** are reported only for codes with at least one gold positive among
  the items where the code applies; macro F1 averages over those codes. Micro F1 counts
  every prediction, so a false positive on a code absent from gold still costs precision.
* Missing (an observer who did not code a unit) is not the empty set: pass ``None``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Sequence
from itertools import combinations

import numpy as np
from scipy import sparse

LabelSet = frozenset[Hashable]


# --- set distances ----------------------------------------------------------------------
def jaccard(a: Sequence[Hashable] | set[Hashable], b: Sequence[Hashable] | set[Hashable]) -> float:
    """|A∩B| / |A∪B|, with Jaccard({}, {}) = 1."""
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def masi_distance(
    a: Sequence[Hashable] | set[Hashable], b: Sequence[Hashable] | set[Hashable]
) -> float:
    """Passonneau's MASI distance 1 - J*M with exact 2/3, 1/3 constants; δ({}, {}) = 0."""
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 0.0
    inter = len(sa & sb)
    if sa == sb:
        monotonicity = 1.0
    elif inter == min(len(sa), len(sb)):
        monotonicity = 2.0 / 3.0
    elif inter > 0:
        monotonicity = 1.0 / 3.0
    else:
        monotonicity = 0.0
    return 1.0 - (inter / len(sa | sb)) * monotonicity


def _distance_matrix(values: list[LabelSet], distance: str) -> np.ndarray:
    """Pairwise set distances, vectorised over the distinct sets."""
    labels = sorted({label for value in values for label in value}, key=str)
    index = {label: i for i, label in enumerate(labels)}
    v = np.zeros((len(values), max(len(labels), 1)), dtype=np.float64)
    for row, value in enumerate(values):
        for label in value:
            v[row, index[label]] = 1.0
    size = v.sum(axis=1)
    inter = v @ v.T
    union = size[:, None] + size[None, :] - inter
    both_empty = union == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        if distance == "dice":
            sim = np.where(both_empty, 1.0, 2 * inter / (size[:, None] + size[None, :]))
            return 1.0 - sim
        j = np.where(both_empty, 1.0, inter / np.where(both_empty, 1, union))
    if distance == "jaccard":
        return 1.0 - j
    if distance != "masi":
        raise ValueError(f"unknown set distance {distance!r}: masi, jaccard or dice")
    identical = (inter == size[:, None]) & (inter == size[None, :])
    subset = inter == np.minimum(size[:, None], size[None, :])
    m = np.where(identical, 1.0, np.where(subset, 2 / 3, np.where(inter > 0, 1 / 3, 0.0)))
    return 1.0 - j * m


# --- alpha over label sets -------------------------------------------------------------
def _set_coincidences(coded: list[list[LabelSet]], values: list[LabelSet]) -> np.ndarray:
    """The coincidence matrix of label-set values, from a sparse units x values count.

    With 50 codes a corpus has thousands of distinct label sets, and a dense 10,000 x
    3,000 count matrix (and its product) took 240 MB and ~3 s; each unit has only as many
    non-zero cells as coders, so the sparse product is exact and takes milliseconds.
    """
    index = {value: i for i, value in enumerate(values)}
    rows = [u for u, unit in enumerate(coded) for _ in unit]
    cols = [index[value] for unit in coded for value in unit]
    counts = sparse.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(len(coded), len(values))
    )  # duplicate (unit, value) entries are summed, as the dense += was
    m = np.asarray(counts.sum(axis=1)).ravel()
    scale = np.zeros_like(m)
    pairable = m >= 2
    scale[pairable] = 1.0 / (m[pairable] - 1.0)
    weighted = sparse.diags(np.sqrt(scale)) @ counts
    diagonal = np.asarray((sparse.diags(scale) @ counts).sum(axis=0)).ravel()
    return np.asarray((weighted.T @ weighted).todense()) - np.diag(diagonal)


def _set_units(
    units: Sequence[Sequence[Sequence[Hashable] | None]],
) -> list[list[LabelSet]]:
    return [[frozenset(cell) for cell in unit if cell is not None] for unit in units]


def set_alpha(
    units: Sequence[Sequence[Sequence[Hashable] | None]], distance: str = "masi"
) -> float:
    """Krippendorff's alpha whose values are label sets, δ = a set distance (MASI default).

    ``units``: one list per unit of each coder's label set (``None`` = not coded).
    Unpairable units are dropped; NaN when expected disagreement is zero.
    """
    coded = [unit for unit in _set_units(units) if len(unit) >= 2]
    values = sorted({value for unit in coded for value in unit}, key=lambda s: sorted(map(str, s)))
    if not coded:
        return math.nan
    o = _set_coincidences(coded, values)
    delta = _distance_matrix(values, distance)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    d_o = (o * delta).sum()
    d_e = (n_c[:, None] * n_c[None, :] * delta).sum() / (n - 1)
    if d_e <= 1e-15:
        return math.nan
    return float(1.0 - d_o / d_e)


def mv_alpha(units: Sequence[Sequence[Sequence[Hashable] | None]]) -> float:
    """Krippendorff & Craggs' (2016) multi-valued alpha, nominal (mv-alpha).

    δ(C, K) = 1 - 2|C∩K| / (|C|+|K|), δ({}, {}) = 0. Observed disagreement uses the
    coincidences of whole sets; expected disagreement averages δ over all label
    combinations of the observed set sizes, weighted by label frequencies (as in the
    reference implementation, CRAN ``mvalpha``). Instead of enumerating combinations (C(48, 9)
    is 1.7e9) the frequency-weighted sums are computed with a generating polynomial over
    labels, exact and fast for any number of labels.
    """
    coded = [unit for unit in _set_units(units) if len(unit) >= 2]
    if not coded:
        return math.nan
    # observed: coincidences of distinct sets
    values = sorted({value for unit in coded for value in unit}, key=lambda s: sorted(map(str, s)))
    o = _set_coincidences(coded, values)
    n_sets = o.sum(axis=1)
    n_total = n_sets.sum()
    delta = _distance_matrix(values, "dice")
    d_o = float((o * delta).sum() / n_total)

    # label frequencies n_c (how often each label occurs across the pairable sets)
    labels = sorted({label for value in values for label in value}, key=str)
    freq = np.array(
        [sum(n_sets[i] for i, value in enumerate(values) if label in value) for label in labels]
    )
    sizes = np.array([len(value) for value in values])
    cardinalities = sorted(set(sizes.tolist()))
    prob = {c: float(n_sets[sizes == c].sum() / n_total) for c in cardinalities}
    d_e = 0.0
    for a_idx, a in enumerate(cardinalities):
        for b in cardinalities[a_idx:]:
            weights = _combination_weights(freq, a, b)
            total = sum(weights.values())
            if total == 0:
                continue
            if a == 0 and b == 0:
                mean_delta = 0.0
            else:
                mean_delta = sum(w * (1 - 2 * j / (a + b)) for j, w in weights.items()) / total
            d_e += prob[a] * prob[b] * mean_delta * (2.0 if a != b else 1.0)
    if d_e <= 1e-15:
        return math.nan
    return float(1.0 - d_o / d_e)


def _combination_weights(freq: np.ndarray, a: int, b: int) -> dict[int, float]:
    """Σ over (C, K), |C|=a, |K|=b, of Π_{C} n_c · Π_{K\\C} n_k · Π_{K∩C} (n_k - 1), by |C∩K|.

    Each label is in neither set (1), only C (n), only K (n) or both (n(n-1)); the
    product of these per-label polynomials, read at x^(a-j) y^(b-j) z^j, gives the sum.
    """
    poly = np.zeros((a + 1, b + 1, min(a, b) + 1))
    poly[0, 0, 0] = 1.0
    for n in freq:
        new = poly.copy()
        new[1:, :, :] += n * poly[:-1, :, :]
        new[:, 1:, :] += n * poly[:, :-1, :]
        if poly.shape[2] > 1:
            new[:, :, 1:] += n * (n - 1) * poly[:, :, :-1]
        poly = new
    out: dict[int, float] = {}
    for j in range(min(a, b) + 1):
        if a - j >= 0 and b - j >= 0:
            out[j] = float(poly[a - j, b - j, j])
    return out


# --- gold vs predicted label sets ---------------------------------------------------------
def indicator(label_sets: Sequence[Sequence[Hashable]], codes: Sequence[Hashable]) -> np.ndarray:
    """Items x codes 0/1 matrix; labels outside ``codes`` are ignored."""
    index = {code: i for i, code in enumerate(codes)}
    out = np.zeros((len(label_sets), len(codes)), dtype=np.float64)
    for row, labels in enumerate(label_sets):
        for label in labels:
            if label in index:
                out[row, index[label]] = 1.0
    return out


def item_stats(gold: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-item additive statistics: [tp, fp, fn, f1_i, jaccard_i, exact_i]."""
    tp = (gold * pred).sum(axis=1)
    fp = ((1 - gold) * pred).sum(axis=1)
    fn = (gold * (1 - pred)).sum(axis=1)
    denom = 2 * tp + fp + fn
    empty = denom == 0
    f1 = np.where(empty, 1.0, 2 * tp / np.where(empty, 1, denom))
    union = tp + fp + fn
    jac = np.where(union == 0, 1.0, tp / np.where(union == 0, 1, union))
    exact = (fp + fn == 0).astype(np.float64)
    return np.column_stack([tp, fp, fn, f1, jac, exact])


def set_metrics_from_sums(sums: np.ndarray, n: np.ndarray | float) -> dict[str, np.ndarray]:
    """micro P/R/F1, samples F1, Jaccard, exact match from summed :func:`item_stats`."""
    s = np.asarray(sums, dtype=np.float64)
    tp, fp, fn = s[..., 0], s[..., 1], s[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        micro = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        return {
            "micro_precision": precision,
            "micro_recall": recall,
            "micro_f1": micro,
            "samples_f1": s[..., 3] / n,
            "jaccard": s[..., 4] / n,
            "exact_match": s[..., 5] / n,
        }


def code_cells(gold: np.ndarray, pred: np.ndarray, applies: np.ndarray) -> np.ndarray:
    """Per-item, per-code confusion cells (items x 4 x codes): tp, fp, fn, tn where the code applies."""
    a = applies.astype(np.float64)
    tp = gold * pred * a
    fp = (1 - gold) * pred * a
    fn = gold * (1 - pred) * a
    tn = (1 - gold) * (1 - pred) * a
    return np.stack([tp, fp, fn, tn], axis=1)


def code_metrics_from_cells(cells: np.ndarray) -> dict[str, np.ndarray]:
    """Per-code precision, recall, F1, kappa, prevalence, support from summed cells (..., 4, codes)."""
    c = np.asarray(cells, dtype=np.float64)
    tp, fp, fn, tn = c[..., 0, :], c[..., 1, :], c[..., 2, :], c[..., 3, :]
    n = tp + fp + fn + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        p_o = (tp + tn) / n
        gold_pos = (tp + fn) / n
        pred_pos = (tp + fp) / n
        p_e = gold_pos * pred_pos + (1 - gold_pos) * (1 - pred_pos)
        kappa = np.where(np.abs(1 - p_e) > 1e-15, (p_o - p_e) / (1 - p_e), np.nan)
        prevalence = gold_pos
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "kappa": kappa,
        "prevalence": prevalence,
        "support": tp + fn,
        "predicted": tp + fp,
        "n": n,
    }


def macro_f1_from_cells(cells: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Mean F1 over the codes in ``keep`` (those with gold positives), batched."""
    f1 = code_metrics_from_cells(cells)["f1"]
    if not keep.any():
        return np.full(f1.shape[:-1], np.nan)
    # a kept code with no gold positives and no predictions in a resample is undefined
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(f1[..., keep], axis=-1)


def pairwise(coders: Sequence[str]) -> list[tuple[str, str]]:
    """Every unordered pair of coders, in the given order."""
    return list(combinations(coders, 2))
