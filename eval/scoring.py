"""Score a classifier's predictions against a gold set.

What is scored, and on which items (each choice is tested in tests/test_eval_cli.py):

* **Themes** are scored on the items whose gold ``relevant`` is not ``false``. A gold
  non-relevant item ("Did not answer") has no themes by definition; it is scored once,
  under relevance, instead of also counting as an easy "no themes" hit in every theme
  figure. A prediction that marks an item not relevant predicts *no themes* for it (as
  ``Labels.from_proposal`` does), whatever themes it also listed.
* **Per-code** figures use only the items a code applies to: a code limited to a group
  (ArgKP: the key points of one motion) is scored on that motion's items, so its kappa and
  prevalence are not inflated by thousands of items where it could never apply
  (``scope`` says which). Codes with no gold positives are skipped (listed under
  ``skipped_codes``); macro F1 averages the codes kept. Prevalence and support sit beside
  every kappa and F1, because rare codes make kappa unstable.
* **Parent rule**: when the codebook's ``sub_themes_imply_parent`` is true, gold and
  predicted theme sets are both expanded with ``Codebook.with_parents`` before scoring
  (a sub-theme also codes its parent); when false (the default) they are scored as given.
* **Stance** is scored on gold-relevant items with a gold stance, under questions that
  have one (``has_stance: false`` questions are left out). A missing or unknown
  predicted stance is the category ``(none)``: always wrong. Weighted kappas (linear,
  quadratic) use the codebook's full ordered scale (pitfall 4) and only the items whose
  predicted stance is on the scale (``n_weighted``).
* **Relevance**: the positive class of ``relevance.f1`` is *not relevant* (what the
  classifier has to catch); ``f1_relevant`` is the other class.
* **Matching** (items with ``uncertain_labels``, e.g. ArgKP): KPA-2021 track-1 mAP, see
  ``eval.matching``.
* An item without a prediction counts as predicting nothing (no themes, no stance,
  relevant); ``n_missing_predictions`` says how many.
* Bootstrap 95% CIs (items resampled, 1,000 resamples, seed 0) for every headline figure,
  under ``ci`` with dotted keys.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import f1_score

from eval import agreement, bootstrap, calibration, matching, multilabel
from eval.gold import GoldItem
from eval.predictions import Prediction, read_predictions
from schemas import Codebook

# Prediction and read_predictions live in eval.predictions; importable from here too.
__all__ = [
    "HEADLINE", "NONE_STANCE", "Prediction", "flatten", "lookup", "read_predictions", "score",
]  # fmt: skip

NONE_STANCE = "(none)"
HEADLINE = (
    "themes.micro_f1",
    "themes.macro_f1",
    "themes.samples_f1",
    "stance.accuracy",
    "stance.macro_f1",
    "stance.kappa",
    "relevance.f1",
    "relevance.kappa",
)


# --- helpers ---------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    """A JSON-safe number: NaN and inf become None."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


@dataclass
class _Intervals:
    """The run's bootstrap settings and the 95% CIs found so far (dotted keys)."""

    n_resamples: int
    seed: int
    found: dict[str, list[float | None]] = field(default_factory=dict)

    def add(self, key: str, stats: np.ndarray, fn: Any) -> None:
        """The interval of ``fn`` over item-resampled sums of ``stats``, under ``key``."""
        lo, hi = bootstrap.bootstrap_ci(stats, fn, n_resamples=self.n_resamples, seed=self.seed)
        self.found[key] = [_num(lo), _num(hi)]


def _table_stats(gold: Sequence[int], pred: Sequence[int], k: int) -> np.ndarray:
    """One-hot confusion cell per item (items x k x k): resampled sums are tables."""
    cells = np.zeros((len(gold), k, k), dtype=np.float32)
    cells[np.arange(len(gold)), np.asarray(gold, dtype=int), np.asarray(pred, dtype=int)] = 1.0
    return cells


def _macro_f1_tables(tables: np.ndarray, keep: np.ndarray) -> np.ndarray:
    t = np.asarray(tables, dtype=np.float64)
    tp = np.diagonal(t, axis1=-2, axis2=-1)
    gold = t.sum(axis=-1)
    pred = t.sum(axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(gold + pred > 0, 2 * tp / (gold + pred), np.nan)
    if not keep.any():
        return np.full(f1.shape[:-1], np.nan)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(f1[..., keep], axis=-1)


# --- scoring -----------------------------------------------------------------------------
def score(
    codebook: Codebook,
    items: Sequence[GoldItem],
    predictions: dict[str, Prediction],
    *,
    n_resamples: int = bootstrap.DEFAULT_RESAMPLES,
    seed: int = bootstrap.DEFAULT_SEED,
) -> dict[str, Any]:
    """All metrics for ``predictions`` on ``items``, as a JSON-ready nested dict."""
    empty = Prediction(id="")
    preds = [predictions.get(item.id, empty) for item in items]
    result: dict[str, Any] = {
        "n_items": len(items),
        "n_missing_predictions": sum(1 for item in items if item.id not in predictions),
    }
    ci = _Intervals(n_resamples, seed)
    result["themes"] = _score_themes(codebook, items, preds, ci)
    stance = _score_stance(codebook, items, preds, ci)
    if stance is not None:
        result["stance"] = stance
    relevance = _score_relevance(items, preds, ci)
    if relevance is not None:
        result["relevance"] = relevance
    if any(item.uncertain_labels for item in items):
        result["matching"] = _score_matching(codebook, items, preds)
    result["calibration"] = _score_calibration(codebook, items, preds)
    result["ci"] = ci.found
    return result


def _score_themes(
    codebook: Codebook,
    items: Sequence[GoldItem],
    preds: Sequence[Prediction],
    ci: _Intervals,
) -> dict[str, Any]:
    codes = list(codebook.theme_ids)
    known = set(codes)
    scored = [i for i, item in enumerate(items) if item.relevant is not False]
    # The codebook's parent rule: with sub_themes_imply_parent, a sub-theme also codes its
    # parent, on both sides (with_parents returns the codes unchanged when the rule is off).
    gold_sets = [codebook.with_parents(items[i].labels) for i in scored]
    pred_sets = [
        codebook.with_parents(preds[i].labels) if preds[i].relevant is not False else []
        for i in scored
    ]
    extra = sorted({label for labels in gold_sets for label in labels} - known)
    codes += extra  # gold labels missing from the codebook are still scored
    unknown_predicted = sorted({c for labels in pred_sets for c in labels} - set(codes))
    out: dict[str, Any] = {"n_items": len(scored), "n_codes": len(codes)}
    if codebook.sub_themes_imply_parent:
        out["parents_implied"] = True
    if unknown_predicted:
        out["unknown_predicted_codes"] = unknown_predicted
    if not scored:
        return out
    gold = multilabel.indicator(gold_sets, codes)
    pred = multilabel.indicator(pred_sets, codes)
    themes_by_id = {theme.id: theme for theme in codebook.themes}
    applies = np.ones_like(gold)
    for col, code in enumerate(codes):
        theme = themes_by_id.get(code)
        if theme is not None and theme.questions is not None:
            applies[:, col] = [items[i].scope in theme.questions for i in scored]
    stats = multilabel.item_stats(gold, pred)
    n = float(len(scored))
    sets = multilabel.set_metrics_from_sums(stats.sum(axis=0), n)
    cells = multilabel.code_cells(gold, pred, applies)
    per = multilabel.code_metrics_from_cells(cells.sum(axis=0))
    keep = per["support"] > 0
    macro = multilabel.macro_f1_from_cells(cells.sum(axis=0), keep)
    out.update({name: _num(value) for name, value in sets.items()})
    out["macro_f1"] = _num(macro)
    two_coders = [[g, p] for g, p in zip(gold_sets, pred_sets, strict=True)]
    out["masi_alpha"] = _num(multilabel.set_alpha(two_coders, "masi"))
    out["mv_alpha"] = _num(multilabel.mv_alpha(two_coders))
    per_code: dict[str, Any] = {}
    for col, code in enumerate(codes):
        if not keep[col]:
            continue
        theme = themes_by_id.get(code)
        per_code[code] = {
            **{
                name: _num(per[name][col])
                for name in ("precision", "recall", "f1", "kappa", "prevalence")
            },
            "support": int(per["support"][col]),
            "predicted": int(per["predicted"][col]),
            "n": int(per["n"][col]),
            "scope": "all" if theme is None or theme.questions is None else "group",
        }
    out["n_codes_scored"] = int(keep.sum())
    out["skipped_codes"] = [code for col, code in enumerate(codes) if not keep[col]]
    out["per_code"] = per_code
    ci.add("themes.micro_f1", stats, lambda s: multilabel.set_metrics_from_sums(s, n)["micro_f1"])
    ci.add("themes.samples_f1", stats, lambda s: multilabel.set_metrics_from_sums(s, n)["samples_f1"])
    ci.add("themes.exact_match", stats, lambda s: multilabel.set_metrics_from_sums(s, n)["exact_match"])
    ci.add("themes.macro_f1", cells, lambda s: multilabel.macro_f1_from_cells(s, keep))
    return out


def _score_stance(
    codebook: Codebook,
    items: Sequence[GoldItem],
    preds: Sequence[Prediction],
    ci: _Intervals,
) -> dict[str, Any] | None:
    scored = [
        i
        for i, item in enumerate(items)
        if item.stance is not None
        and item.relevant is not False
        # a question that declares no stance (has_stance: false) is not scored on one
        and codebook.has_stance(item.question)
    ]
    if not scored:
        return None
    scale = list(codebook.stance_ids)
    scale += sorted({items[i].stance for i in scored} - set(scale))  # type: ignore[arg-type]
    gold = [str(items[i].stance) for i in scored]
    pred = [str(preds[i].stance) if preds[i].stance in scale else NONE_STANCE for i in scored]
    categories = scale + ([NONE_STANCE] if NONE_STANCE in pred else [])
    index = {c: k for k, c in enumerate(categories)}
    g = [index[v] for v in gold]
    p = [index[v] for v in pred]
    table = agreement.contingency(g, p, list(range(len(categories))))
    keep = table.sum(axis=1) > 0  # macro F1 over stances present in gold
    out: dict[str, Any] = {
        "n_items": len(scored),
        "categories": categories,
        "accuracy": _num(agreement.table_coefficients(table, "percent")),
        "macro_f1": _num(
            f1_score(
                g,
                p,
                labels=[k for k in range(len(categories)) if keep[k]],
                average="macro",
                zero_division=0,
            )
        ),
        "kappa": _num(agreement.cohen_kappa(g, p, categories=list(range(len(categories))))),
        "confusion": table.astype(int).tolist(),
    }
    ordered = codebook.stance is not None and codebook.stance.ordered
    if ordered:
        on_scale = [(a, b) for a, b in zip(gold, pred, strict=True) if b != NONE_STANCE]
        out["n_weighted"] = len(on_scale)
        for weights in ("linear", "quadratic"):
            out[f"kappa_{weights}"] = _num(
                agreement.cohen_kappa(
                    [a for a, _ in on_scale],
                    [b for _, b in on_scale],
                    categories=scale,
                    weights=weights,
                )
            )
    cells = _table_stats(g, p, len(categories))
    ci.add("stance.accuracy", cells, lambda t: agreement.table_coefficients(t, "percent"))
    ci.add("stance.kappa", cells, lambda t: agreement.table_coefficients(t, "cohen"))
    ci.add("stance.macro_f1", cells, lambda t: _macro_f1_tables(t, keep))
    if ordered and out.get("n_weighted"):
        on = [k for k, b in enumerate(pred) if b != NONE_STANCE]
        scale_cells = _table_stats([g[k] for k in on], [p[k] for k in on], len(scale))
        ci.add("stance.kappa_linear", scale_cells, lambda t: agreement.table_coefficients(t, "cohen", "linear"))
    return out


def _score_relevance(
    items: Sequence[GoldItem],
    preds: Sequence[Prediction],
    ci: _Intervals,
) -> dict[str, Any] | None:
    scored = [i for i, item in enumerate(items) if item.relevant is not None]
    if not scored:
        return None
    # index 0 = relevant, 1 = not relevant (the positive class)
    g = [0 if items[i].relevant else 1 for i in scored]
    p = [0 if preds[i].relevant is not False else 1 for i in scored]
    table = agreement.contingency(g, p, [0, 1])
    out = {
        "n_items": len(scored),
        "positive": "not_relevant",
        "prevalence": _num(sum(g) / len(g)),
        "accuracy": _num(agreement.table_coefficients(table, "percent")),
        "f1": _num(f1_score(g, p, pos_label=1, zero_division=0)) if sum(g) else None,
        "f1_relevant": _num(f1_score(g, p, pos_label=0, zero_division=0))
        if len(g) - sum(g)
        else None,
        "kappa": _num(agreement.table_coefficients(table, "cohen")),
        "confusion": table.astype(int).tolist(),
    }
    cells = _table_stats(g, p, 2)

    def f1_not_relevant(t: np.ndarray) -> np.ndarray:
        tp, fp, fn = t[..., 1, 1], t[..., 0, 1], t[..., 1, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)

    if sum(g):
        ci.add("relevance.f1", cells, f1_not_relevant)
    ci.add("relevance.kappa", cells, lambda t: agreement.table_coefficients(t, "cohen"))
    return out


def _allowed_codes(codebook: Codebook, item: GoldItem) -> list[str]:
    return [
        theme.id
        for theme in codebook.themes
        if theme.questions is None or item.scope in theme.questions
    ]


def _stance_side(
    codebook: Codebook, allowed: list[str] | None, stance: str | None
) -> list[str] | None:
    """Key points of the argument's own side, when key points are filed by stance.

    KPA-2021 track 1 gives each argument with its stance and matches it only against the
    key points of its motion *and* stance; ArgKP codes carry that stance as their category.
    """
    if stance is None or allowed is None:
        return allowed
    stance_ids = set(codebook.stance_ids)
    category_of = {theme.id: theme.category for theme in codebook.themes}
    categories = {code: category_of.get(code) for code in allowed}
    if not categories or not all(category in stance_ids for category in categories.values()):
        return allowed
    return [code for code, category in categories.items() if category == stance]


def _score_matching(
    codebook: Codebook, items: Sequence[GoldItem], preds: Sequence[Prediction]
) -> dict[str, Any]:
    match_items = []
    best: dict[str, tuple[str, float]] = {}
    for item, pred in zip(items, preds, strict=True):
        match_items.append(
            matching.MatchItem(
                id=item.id,
                group=item.scope,
                stance=item.stance,
                labels=frozenset(item.labels),
                uncertain=frozenset(item.uncertain_labels),
            )
        )
        allowed = _stance_side(codebook, _allowed_codes(codebook, item), item.stance)
        if pred.scores:
            best[item.id] = matching.best_match(pred.scores, allowed)
        elif pred.labels:
            score_value = pred.confidence if pred.confidence is not None else 1.0
            best[item.id] = matching.best_match(
                {label: score_value for label in pred.labels}, allowed
            )
    result = matching.kpa_map(match_items, best)
    return {
        "map_strict": _num(result["map_strict"]),  # type: ignore[arg-type]
        "map_relaxed": _num(result["map_relaxed"]),  # type: ignore[arg-type]
        "n_groups": result["n_groups"],
        "groups": result["groups"],
    }


def _score_calibration(
    codebook: Codebook, items: Sequence[GoldItem], preds: Sequence[Prediction]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    conf: list[float] = []
    hit: list[bool] = []
    for item, pred in zip(items, preds, strict=True):
        if item.relevant is False:
            continue
        gold = set(codebook.with_parents(item.labels))
        for code, value in pred.scores.items():
            conf.append(value)
            hit.append(code in gold)
    if conf:
        out["themes"] = calibration.calibration(conf, hit)
    stance_pairs = [
        (pred.stance_confidence, pred.stance == item.stance)
        for item, pred in zip(items, preds, strict=True)
        if item.stance is not None
        and pred.stance_confidence is not None
        and item.relevant is not False
    ]
    if stance_pairs:
        out["stance"] = calibration.calibration(
            [c for c, _ in stance_pairs], [h for _, h in stance_pairs]
        )
    relevance_pairs = [
        (pred.relevance_confidence, (pred.relevant is not False) == item.relevant)
        for item, pred in zip(items, preds, strict=True)
        if item.relevant is not None and pred.relevance_confidence is not None
    ]
    if relevance_pairs:
        out["relevance"] = calibration.calibration(
            [c for c, _ in relevance_pairs], [h for _, h in relevance_pairs]
        )
    return out


# --- metric paths ------------------------------------------------------------------------
def lookup(metrics: dict[str, Any], path: str) -> Any:
    """The value at a dotted path; keys may themselves contain dots (code ids).

    Raises KeyError naming the path when it does not exist.
    """
    if path in metrics:
        return metrics[path]
    if path.startswith("ci.") and path[3:] in metrics.get("ci", {}):
        return metrics["ci"][path[3:]]
    node: Any = metrics
    rest = path
    while rest:
        if not isinstance(node, dict):
            raise KeyError(path)
        # longest key that matches the start of the remaining path
        match = None
        for key in sorted(node, key=lambda k: -len(str(k))):
            key_str = str(key)
            if rest == key_str or rest.startswith(key_str + "."):
                match = key
                break
        if match is None:
            raise KeyError(path)
        node = node[match]
        rest = rest[len(str(match)) + 1 :]
    return node


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar metrics as {dotted.path: value} (lists and the ci object left out)."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if not prefix and key in ("ci", "calibration"):
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        elif isinstance(value, int | float) or value is None:
            out[path] = value
    return out
