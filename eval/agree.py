"""``coder agree``: agreement between coders from a long-format file.

Input: CSV or JSONL rows of (coder, item, label). A row may carry one label (several
rows per coder and item build a label set with ``multi``) or a list: a JSON list, or a
string split on ``;`` or ``|``. Column names are detected (coder/rater/annotator/...,
item/unit/id/..., label/code/value/...) unless given.

Conventions: a blank label means *not coded* for single-label fields (missing data, never
a category), and *coded with no labels* (the empty set) with ``multi``. For single-label
fields, the same coder giving one item two different labels is an error naming both rows;
an exact duplicate row is ignored.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coder.errors import CoderError
from coder.jsonl import parse_jsonl
from eval import agreement, bootstrap, multilabel

CODER_COLUMNS = ("coder", "rater", "annotator", "reviewer", "observer", "judge")
ITEM_COLUMNS = ("item", "unit", "item_id", "unit_id", "response_id", "id", "response", "subject")
LABEL_COLUMNS = (
    "label",
    "labels",
    "code",
    "codes",
    "value",
    "theme",
    "themes",
    "category",
    "rating",
)

SINGLE_METRICS = ("percent", "cohen", "scott", "ac1", "fleiss", "alpha")
MULTI_METRICS = ("exact", "jaccard", "f1", "masi_alpha", "mv_alpha")


class AgreeInputError(CoderError):
    """The agreement input file is malformed (message names file, row and field)."""


@dataclass
class LongData:
    """Labels by coder and item, in first-seen order."""

    coders: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    #: (coder, item) -> a label (single) or a set of labels (multi)
    values: dict[tuple[str, str], Any] = field(default_factory=dict)


def _pick(
    columns: Sequence[str], wanted: str | None, candidates: Sequence[str], role: str, path: Path
) -> str:
    if wanted:
        if wanted not in columns:
            raise AgreeInputError(
                f"{path}: no column '{wanted}' for the {role}; columns are: {', '.join(columns)}"
            )
        return wanted
    lower = {c.lower().strip(): c for c in columns}
    for candidate in candidates:
        if candidate in lower:
            return lower[candidate]
    raise AgreeInputError(
        f"{path}: cannot tell which column holds the {role} (looked for {', '.join(candidates)}); "
        f"columns are: {', '.join(columns)}. Name it with --{role}-column."
    )


def _split_labels(raw: Any, where: str) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, list):
        return [str(x).strip() for x in raw if str(x).strip()]
    text = str(raw).strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            raise AgreeInputError(f"{where}: label list is not valid JSON ({error.msg})") from None
        if not isinstance(parsed, list):
            raise AgreeInputError(f"{where}: expected a JSON list of labels")
        return [str(x).strip() for x in parsed if str(x).strip()]
    for sep in (";", "|"):
        if sep in text:
            return [part.strip() for part in text.split(sep) if part.strip()]
    return [text]


def read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """Columns and (row number, row) pairs from a CSV or JSONL file."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise AgreeInputError(f"{path}: cannot read: {error}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if not text.strip():
        raise AgreeInputError(f"{path}: the file is empty")
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json") or text.lstrip().startswith("{"):
        columns: list[str] = []
        for number, data in parse_jsonl(text, path, AgreeInputError):
            for key in data:
                if key not in columns:
                    columns.append(key)
            rows.append((number, data))
        return columns, rows
    reader = csv.DictReader(io.StringIO(text))
    columns = [c for c in (reader.fieldnames or []) if c is not None]
    for number, row in enumerate(reader, start=2):
        if None in row:
            raise AgreeInputError(f"{path}, row {number}: more cells than header columns")
        rows.append((number, row))
    return columns, rows


def load_long(
    path: Path,
    *,
    multi: bool = False,
    coder_column: str | None = None,
    item_column: str | None = None,
    label_column: str | None = None,
) -> LongData:
    """Read a long-format agreement file into :class:`LongData`."""
    columns, rows = read_rows(path)
    if not rows:
        raise AgreeInputError(f"{path}: no data rows")
    coder_col = _pick(columns, coder_column, CODER_COLUMNS, "coder", path)
    item_col = _pick(columns, item_column, ITEM_COLUMNS, "item", path)
    label_col = _pick(columns, label_column, LABEL_COLUMNS, "label", path)
    data = LongData()
    first_row: dict[tuple[str, str], int] = {}
    unit_word = "line" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "row"
    for number, row in rows:
        where = f"{path}, {unit_word} {number}"
        coder = row.get(coder_col)
        item = row.get(item_col)
        if coder is None or str(coder).strip() == "":
            raise AgreeInputError(f"{where}, field '{coder_col}': the coder is blank")
        if item is None or str(item).strip() == "":
            raise AgreeInputError(f"{where}, field '{item_col}': the item is blank")
        coder, item = str(coder).strip(), str(item).strip()
        if coder not in data.coders:
            data.coders.append(coder)
        if item not in data.items:
            data.items.append(item)
        key = (coder, item)
        labels = _split_labels(row.get(label_col), f"{where}, field '{label_col}'")
        if multi:
            data.values.setdefault(key, set()).update(labels)
            continue
        if len(labels) > 1:
            raise AgreeInputError(
                f"{where}, field '{label_col}': {len(labels)} labels in a single-label field "
                "(use --multi for label sets)"
            )
        if not labels:
            continue  # blank = not coded (missing), never a category
        label = labels[0]
        if key in data.values and data.values[key] != label:
            raise AgreeInputError(
                f"{where}, field '{label_col}': coder '{coder}' already gave item '{item}' "
                f"the label '{data.values[key]}' ({unit_word} {first_row[key]}); "
                "one label per coder and item (use --multi for label sets)"
            )
        data.values[key] = label
        first_row.setdefault(key, number)
    return data


def _convert(value: str, level: str) -> Any:
    if level in ("interval", "ratio"):
        return float(value)
    return value


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def compute(
    data: LongData,
    *,
    multi: bool = False,
    level: str = "nominal",
    categories: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    n_resamples: int = bootstrap.DEFAULT_RESAMPLES,
    seed: int = bootstrap.DEFAULT_SEED,
) -> dict[str, Any]:
    """Pairwise and all-coder agreement, with bootstrap CIs (items resampled)."""
    if multi:
        return _compute_multi(data, metrics or MULTI_METRICS, n_resamples, seed)
    return _compute_single(data, level, categories, metrics or SINGLE_METRICS, n_resamples, seed)


def _categories(data: LongData, level: str, categories: Sequence[str] | None) -> list[Any]:
    observed = {v for v in data.values.values()}
    if categories:
        cats: list[Any] = [_convert(c, level) for c in categories]
        unknown = {_convert(v, level) for v in observed} - set(cats)
        if unknown:
            raise AgreeInputError(
                f"labels not in --categories: {', '.join(sorted(map(str, unknown)))}"
            )
        return cats
    if level in ("interval", "ratio"):
        return sorted({float(v) for v in observed})
    if level == "ordinal" and all(_is_number(v) for v in observed):
        # numeric-looking ordinal labels sort by value ("10" after "9"), not as text
        return sorted(observed, key=float)
    return sorted(observed, key=str)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _check_numbers(data: LongData, level: str) -> None:
    """Interval and ratio data must be numbers: an error naming the first value that is not."""
    if level not in ("interval", "ratio"):
        return
    for (coder, item), value in data.values.items():
        try:
            float(value)
        except ValueError:
            raise AgreeInputError(
                f"{level} data needs numbers: coder '{coder}', item '{item}' has '{value}'"
            ) from None


def _code_matrix(data: LongData, level: str, cats: list[Any]) -> np.ndarray:
    """coders x items: each value's index among ``cats`` (-1: that coder skipped the item)."""
    index = {c: i for i, c in enumerate(cats)}
    codes = np.full((len(data.coders), len(data.items)), -1, dtype=np.int64)
    item_index = {item: u for u, item in enumerate(data.items)}
    coder_index = {coder: i for i, coder in enumerate(data.coders)}
    for (coder, item), value in data.values.items():
        converted = _convert(value, level)
        if level in ("interval", "ratio"):
            converted = float(converted)
        codes[coder_index[coder], item_index[item]] = index[converted]
    return codes


def _pair_specs(metrics: Sequence[str], weighted: bool) -> list[tuple[str, str, Any]]:
    """(figure name, coefficient, weights) for the pairwise table coefficients asked for."""
    specs: list[tuple[str, str, Any]] = []
    if "percent" in metrics:
        specs.append(("percent_agreement", "percent", None))
    if "cohen" in metrics:
        specs.append(("cohen_kappa", "cohen", None))
        if weighted:
            specs.append(("cohen_kappa_linear", "cohen", "linear"))
            specs.append(("cohen_kappa_quadratic", "cohen", "quadratic"))
    if "scott" in metrics:
        specs.append(("scott_pi", "scott", None))
    if "ac1" in metrics:
        specs.append(("gwet_ac1", "ac1", None))
    return specs


def _pair_row(
    data: LongData,
    codes: np.ndarray,
    cats: list[Any],
    pair: tuple[str, str],
    settings: tuple[str, Sequence[str], int, int],
) -> dict[str, Any]:
    """One pair of coders' figures on the items both coded; ``settings`` is (level,
    metrics, n_resamples, seed)."""
    level, metrics, n_resamples, seed = settings
    a, b = pair
    ia, ib = data.coders.index(a), data.coders.index(b)
    k = len(cats)
    both = (codes[ia] >= 0) & (codes[ib] >= 0)
    g, p = codes[ia][both], codes[ib][both]
    table = agreement.contingency(g.tolist(), p.tolist(), list(range(k)))
    cells = np.zeros((len(g), k, k), dtype=np.float32)
    cells[np.arange(len(g)), g, p] = 1.0
    row: dict[str, Any] = {"coders": [a, b], "n_items": int(both.sum()), "ci": {}}
    for name, kind, weights in _pair_specs(metrics, level != "nominal"):
        row[name] = _num(agreement.table_coefficients(table, kind, weights))
        if len(g):
            lo, hi = bootstrap.bootstrap_ci(cells, _table_metric(kind, weights), n_resamples, seed)
            row["ci"][name] = [_num(lo), _num(hi)]
    if "alpha" in metrics:
        two = agreement.ReliabilityData(
            codes=codes[[ia, ib]], categories=cats, coders=[a, b], units=data.items
        )
        row[f"alpha_{level}"] = _alpha_with_ci(two, level, row["ci"], n_resamples, seed)
    return row


def _overall_row(
    data: LongData, rel: agreement.ReliabilityData, settings: tuple[str, Sequence[str], int, int]
) -> dict[str, Any]:
    """All coders together: percent agreement, Fleiss' kappa, AC1 and alpha with CIs."""
    level, metrics, n_resamples, seed = settings
    overall: dict[str, Any] = {"coders": list(data.coders), "n_items": len(data.items), "ci": {}}
    stats = agreement.unit_agreement_stats(rel.counts)
    for name, kind, wanted in (
        ("percent_agreement", "percent", "percent"),
        ("fleiss_kappa", "fleiss", "fleiss"),
        ("gwet_ac1", "ac1", "ac1"),
    ):
        if wanted not in metrics and not (
            wanted == "fleiss" and "cohen" in metrics and len(data.coders) > 2
        ):
            continue
        overall[name] = _num(agreement._multi_from_stats(stats.sum(axis=0), kind))
        lo, hi = bootstrap.bootstrap_ci(stats, _multi_metric(kind), n_resamples, seed)
        overall["ci"][name] = [_num(lo), _num(hi)]
    if "alpha" in metrics:
        overall[f"alpha_{level}"] = _alpha_with_ci(rel, level, overall["ci"], n_resamples, seed)
    return overall


def _compute_single(
    data: LongData,
    level: str,
    categories: Sequence[str] | None,
    metrics: Sequence[str],
    n_resamples: int,
    seed: int,
) -> dict[str, Any]:
    if level not in agreement.LEVELS:
        raise AgreeInputError(f"unknown level '{level}': choose {', '.join(agreement.LEVELS)}")
    _check_numbers(data, level)
    cats = _categories(data, level, categories)
    codes = _code_matrix(data, level, cats)
    rel = agreement.ReliabilityData(
        codes=codes, categories=cats, coders=data.coders, units=data.items
    )
    settings = (level, metrics, n_resamples, seed)
    return {
        "field_type": "single",
        "level": level,
        "categories": [str(c) for c in cats],
        "n_coders": len(data.coders),
        "n_items": len(data.items),
        "pairs": [
            _pair_row(data, codes, cats, pair, settings)
            for pair in multilabel.pairwise(data.coders)
        ],
        "all": _overall_row(data, rel, settings),
    }


def _table_metric(kind: str, weights: str | None) -> Callable[[np.ndarray], np.ndarray]:
    def metric(tables: np.ndarray) -> np.ndarray:
        return agreement.table_coefficients(tables, kind, weights)

    return metric


def _multi_metric(kind: str) -> Callable[[np.ndarray], np.ndarray]:
    def metric(sums: np.ndarray) -> np.ndarray:
        return agreement._multi_from_stats(sums, kind)

    return metric


def _set_metric(name: str, n: float) -> Callable[[np.ndarray], np.ndarray]:
    def metric(sums: np.ndarray) -> np.ndarray:
        return multilabel.set_metrics_from_sums(sums, n)[name]

    return metric


def _alpha_with_ci(
    data: agreement.ReliabilityData, level: str, ci: dict[str, Any], n_resamples: int, seed: int
) -> float | None:
    counts = data.counts
    value = _num(
        agreement.alpha_from_coincidences(
            agreement.coincidence_matrix(counts), level, data.categories
        )
    )
    k = counts.shape[1]
    # per-unit coincidences cost units x k x k; beyond that the CI is left out
    if counts.shape[0] * k * k <= 20_000_000:
        per_unit = agreement.unit_coincidences(counts).astype(np.float32)
        lo, hi = bootstrap.bootstrap_ci(
            per_unit,
            lambda o: agreement.alpha_from_coincidences(o, level, data.categories),
            n_resamples,
            seed,
        )
        ci[f"alpha_{level}"] = [_num(lo), _num(hi)]
    return value


def _compute_multi(
    data: LongData, metrics: Sequence[str], n_resamples: int, seed: int
) -> dict[str, Any]:
    labels = sorted({label for value in data.values.values() for label in value})
    result: dict[str, Any] = {
        "field_type": "multi",
        "labels": labels,
        "n_coders": len(data.coders),
        "n_items": len(data.items),
        "pairs": [],
        "all": {},
    }
    for a, b in multilabel.pairwise(data.coders):
        joint = [
            item for item in data.items if (a, item) in data.values and (b, item) in data.values
        ]
        first = multilabel.indicator([sorted(data.values[(a, i)]) for i in joint], labels)
        second = multilabel.indicator([sorted(data.values[(b, i)]) for i in joint], labels)
        stats = multilabel.item_stats(first, second)
        n = float(len(joint))
        row: dict[str, Any] = {"coders": [a, b], "n_items": len(joint), "ci": {}}
        if joint:
            sums = multilabel.set_metrics_from_sums(stats.sum(axis=0), n)
            for name, key in (("exact_match", "exact"), ("jaccard", "jaccard"), ("f1", "f1")):
                if key not in metrics:
                    continue
                source = "samples_f1" if key == "f1" else name
                row[name] = _num(sums[source])
                lo, hi = bootstrap.bootstrap_ci(stats, _set_metric(source, n), n_resamples, seed)
                row["ci"][name] = [_num(lo), _num(hi)]
        units = [[sorted(data.values[(a, i)]), sorted(data.values[(b, i)])] for i in joint]
        if "masi_alpha" in metrics:
            row["masi_alpha"] = _num(multilabel.set_alpha(units, "masi")) if units else None
        if "mv_alpha" in metrics:
            row["mv_alpha"] = _num(multilabel.mv_alpha(units)) if units else None
        result["pairs"].append(row)
    all_units = [
        [sorted(data.values[(c, i)]) if (c, i) in data.values else None for c in data.coders]
        for i in data.items
    ]
    overall: dict[str, Any] = {"coders": list(data.coders), "n_items": len(data.items), "ci": {}}
    if "masi_alpha" in metrics:
        overall["masi_alpha"] = _num(multilabel.set_alpha(all_units, "masi"))
    if "mv_alpha" in metrics:
        overall["mv_alpha"] = _num(multilabel.mv_alpha(all_units))
    result["all"] = overall
    return result
