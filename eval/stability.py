"""Run-to-run stability of a backend on a gold set (``coder eval --repeat N``).

The backend runs N times over the same items, run ``i`` with seed ``seed + i`` (the LLM
sends it; with a temperature above 0 the runs differ as a real model's do). Each run is
scored against gold as ``coder eval`` scores one run, and the N runs are compared with
each other, items as units and runs as coders:

- relevance and stance: Krippendorff's alpha (nominal) and Fleiss' kappa, with percent
  agreement beside them (a field nobody varies gives "undefined", never 1);
- themes, set level: Krippendorff's alpha over label sets with the MASI distance;
- themes, per code: nominal alpha of "applied or not" on the items the code applies to,
  for every code some run applied; their mean is reported with the list.

A failed item is missing in that run (never a category). Stance is compared on the items
each run called relevant.
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from coder.backends.base import Classifier
from coder.errors import CoderError
from coder.store import Store
from eval import agreement, multilabel, runner
from eval.gold import GoldItem
from eval.scoring import Prediction, flatten, score
from schemas import Codebook

#: Per-run figures reported with their mean and spread.
RUN_METRICS = (
    "themes.micro_f1", "themes.macro_f1", "stance.accuracy", "stance.kappa", "relevance.f1",
)  # fmt: skip


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def _as_tuple(labels: list[str] | None) -> tuple[str, ...] | None:
    return tuple(labels) if labels is not None else None


def run_agreement(
    runs: Sequence[dict[str, Prediction]], items: Sequence[GoldItem], codebook: Codebook
) -> dict[str, Any]:
    """Agreement between runs (coders) over items (units); see the module docstring."""
    relevance = [[run[i.id].relevant if i.id in run else None for i in items] for run in runs]
    stance = [
        [
            run[i.id].stance if i.id in run and run[i.id].relevant is not False else None
            for i in items
        ]
        for run in runs
    ]
    result: dict[str, Any] = {"runs": len(runs), "items": len(items)}
    for name, matrix in (("relevance", relevance), ("stance", stance)):
        if not any(value is not None for row in matrix for value in row):
            result[name] = None
            continue
        result[name] = {
            "alpha": _number(agreement.krippendorff_alpha(matrix, "nominal")),
            "fleiss_kappa": _number(agreement.fleiss_kappa(matrix)),
            "percent": _number(agreement.percent_agreement_multi(matrix)),
        }
    units = [[sorted(run[i.id].labels) if i.id in run else None for run in runs] for i in items]
    per_code: dict[str, float | None] = {}
    applied = {code for run in runs for p in run.values() for code in p.labels}
    for code in sorted(applied):
        theme = codebook.theme(code) if code in codebook.theme_ids else None
        rows = [
            [
                (code in run[i.id].labels) if i.id in run else None
                for i in items
                if theme is None or theme.applies_to(i.question)
            ]
            for run in runs
        ]
        per_code[code] = _number(agreement.krippendorff_alpha(rows, "nominal"))
    defined = [value for value in per_code.values() if value is not None]
    result["themes"] = {
        "set_alpha_masi": _number(multilabel.set_alpha(units, "masi")),
        "exact_set_percent": _number(
            agreement.percent_agreement_multi(
                [[_as_tuple(u[r]) for u in units] for r in range(len(runs))]
            )
        ),
        "per_code_alpha_mean": round(statistics.fmean(defined), 4) if defined else None,
        "per_code_alpha": per_code,
    }
    return result


def repeat_eval(
    make: Callable[[int], Classifier],
    items: Sequence[GoldItem],
    codebook: Codebook,
    repeats: int,
    *,
    seed: int = 0,
    resamples: int = 200,
    on_run: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``make(seed + i)`` for i < ``repeats`` on ``items``; score each and compare them."""
    if repeats < 2:
        raise ValueError("repeat_eval needs at least 2 runs")
    runs: list[dict[str, Prediction]] = []
    per_run: list[dict[str, Any]] = []
    failed = 0
    for index in range(repeats):
        classifier = make(seed + index)
        predictions, results = runner.predict(classifier, items, codebook)
        failed += sum(1 for r in results if not r.ok)
        runs.append(predictions)
        flat = flatten(score(codebook, items, predictions, n_resamples=resamples, seed=seed))
        point = {"seed": seed + index, **{key: flat.get(key) for key in RUN_METRICS}}
        per_run.append(point)
        if on_run is not None:
            on_run(index, point)
    gold: dict[str, Any] = {}
    for key in RUN_METRICS:
        values = [
            p[key]
            for p in per_run
            if isinstance(p.get(key), int | float) and not math.isnan(p[key])
        ]
        if values:
            gold[key] = {
                "mean": round(statistics.fmean(values), 4),
                "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
                "min": round(min(values), 4),
                "max": round(max(values), 4),
            }
    return {
        "repeats": repeats,
        "seeds": [seed + i for i in range(repeats)],
        "failed_items": failed,
        "per_run": per_run,
        "gold": gold,
        "between_runs": run_agreement(runs, items, codebook),
    }


def llm_factory(
    backend: str, model: str | None, temperature: float | None, **options: Any
) -> Callable[[int], Classifier]:
    """A function making run ``seed``'s classifier: the backend with that seed (and temperature)."""

    def make(seed: int) -> Classifier:
        extra = dict(options)
        if backend == "openai":
            extra["seed"] = seed
            if temperature is not None:
                extra["temperature"] = temperature
        return runner.factory(backend, model, **extra)()

    return make


def stability_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field, between runs, against gold) rows for the printed table."""

    def show(value: Any) -> str:
        return "undefined" if value is None else f"{value:.3f}"

    between = result["between_runs"]
    gold = result["gold"]

    def spread(key: str) -> str:
        entry = gold.get(key)
        return "-" if entry is None else f"{entry['mean']:.3f} ± {entry['sd']:.3f}"

    rows = []
    themes = between["themes"]
    rows.append(
        (
            "themes (set, MASI alpha)",
            show(themes["set_alpha_masi"]),
            spread("themes.micro_f1") + " micro-F1",
        )
    )
    rows.append(
        (
            "themes (per code, mean alpha)",
            show(themes["per_code_alpha_mean"]),
            spread("themes.macro_f1") + " macro-F1",
        )
    )
    rows.append(("themes (identical sets)", show(themes["exact_set_percent"]), ""))
    for name, key in (("stance", "stance.accuracy"), ("relevance", "relevance.f1")):
        entry = between.get(name)
        if entry is None:
            continue
        rows.append(
            (
                f"{name} (alpha / kappa / %)",
                f"{show(entry['alpha'])} / {show(entry['fleiss_kappa'])} / {show(entry['percent'])}",
                spread(key) + (" accuracy" if name == "stance" else " F1"),
            )
        )
    return rows


#: ``coder eval`` options a repeat run cannot honour.
_NOT_WITH_REPEAT = {
    "predictions_path": "--predictions",
    "train_path": "--train",
    "cv": "--cv",
    "learning_curve": "--learning-curve",
    "train_filters": "--train-filter",
    "fine_tune": "--fine-tune",
    "stance_pairs": "--stance-pairs",
    "theme_pairs": "--theme-pairs",
    "report_dir": "--report",
    "minimums": "--min",
}


def repeat_from_options(
    repeat: int,
    temperature: float | None,
    *,
    store: Store | None,
    command: str,
    **options: Any,
) -> tuple[dict[str, Any], int | None]:
    """``coder eval --repeat N``'s work: load the gold set, run, store; (result, eval run id)."""
    from eval.gold import data_hash

    if repeat < 2:
        raise CoderError("--temperature goes with --repeat N (N of at least 2)")
    given = [flag for key, flag in _NOT_WITH_REPEAT.items() if options.get(key)]
    if given:
        raise CoderError(
            f"--repeat runs the backend as it is: it cannot be combined with {', '.join(given)}"
        )
    codebook, _, items = runner.scored_items(
        options.get("gold_path"),
        options.get("codebook_path"),
        options.get("items_path"),
        options.get("test_filters") or (),
        options.get("limit"),
    )
    backend, model, seed = (
        options.get("backend", "local"),
        options.get("model"),
        options.get("seed", 0),
    )
    llm_options: dict[str, Any] = {}
    run_id = uuid.uuid4().hex
    if store is not None and backend == "openai":
        llm_options = {"call_logger": store.log_llm_call, "run_id": run_id}
    make = llm_factory(backend, model, temperature, **llm_options)
    result = repeat_eval(
        make, items, codebook, repeat, seed=seed, resamples=options.get("resamples", 200)
    )
    result["n_items"] = len(items)
    result["run"] = {"backend": backend, "model": model, "temperature": temperature, "seed": seed}
    if store is None:
        return result, None
    stored = store.add_eval_run(
        name=options.get("name"),
        backend=backend,
        model=model,
        prompt_hash=None,
        codebook_version=None,
        codebook_hash=codebook.content_hash(),
        data_hash=data_hash(items),
        n_items=len(items),
        params={"mode": f"repeat {repeat}", "repeat": repeat, "seed": seed,
                "temperature": temperature, "llm_run_id": run_id if llm_options else None},
        metrics=_json_safe(result),
        command=command,
    )  # fmt: skip
    return result, stored


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value
