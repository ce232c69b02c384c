"""The tables the eval commands print: agreement, eval figures with baselines, history,
reviewer effort and run-to-run stability (all to ``console``: stderr under ``--json``)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from coder.cli.common import console
from eval.formatting import fmt_signed as _signed
from eval.formatting import fmt_value as _fmt


def _ci(ci: Any) -> str:
    if not ci or ci[0] is None:
        return ""
    return f"{ci[0]:.3f}–{ci[1]:.3f}"


def print_agreement(result: dict[str, Any]) -> None:
    rows = [*result["pairs"], {**result["all"], "coders": ["all coders"]}]
    names: list[str] = []
    for row in rows:
        for key in row:
            if key not in ("coders", "n_items", "ci") and key not in names:
                names.append(key)
    title = (
        f"Agreement ({'label sets' if result['field_type'] == 'multi' else result['level']}), "
        f"{result['n_coders']} coders, {result['n_items']} items; 95% bootstrap CI below each value"
    )
    table = Table(title=title)
    table.add_column("coders")
    table.add_column("items", justify="right")
    for name in names:
        table.add_column(name.replace("_", " "), justify="right")
    for row in rows:
        cells = [
            " vs ".join(row["coders"]) if len(row["coders"]) == 2 else row["coders"][0],
            str(row["n_items"]),
        ]
        for name in names:
            value = _fmt(row.get(name)) if name in row else ""
            interval = _ci(row.get("ci", {}).get(name))
            cells.append(f"{value}\n[dim]{interval}[/]" if interval else value)
        table.add_row(*cells)
    console.print(table)


def print_eval(metrics: dict[str, Any], per_code_rows: int) -> None:
    from eval.report import headline_rows

    table = Table(
        title=f"coder eval: {metrics['n_items']} items ({metrics.get('n_missing_predictions', 0)} without a prediction)"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% CI", justify="right")
    for path, value, ci in headline_rows(metrics):
        table.add_row(path, _fmt(value), _ci(ci))
    console.print(table)
    if metrics.get("baselines"):
        _print_baselines(metrics)
    per_code = metrics.get("themes", {}).get("per_code") or {}
    if per_code and per_code_rows:
        codes = sorted(per_code.items(), key=lambda kv: -kv[1]["support"])[:per_code_rows]
        detail = Table(
            title=f"Per code (top {len(codes)} of {len(per_code)} by support; prevalence beside kappa)"
        )
        for column in (
            "code",
            "prevalence",
            "support",
            "precision",
            "recall",
            "F1",
            "kappa",
            "scope",
        ):
            detail.add_column(column, justify="left" if column in ("code", "scope") else "right")
        for code, v in codes:
            detail.add_row(
                code,
                _fmt(v["prevalence"]),
                str(v["support"]),
                _fmt(v["precision"]),
                _fmt(v["recall"]),
                _fmt(v["f1"]),
                _fmt(v["kappa"]),
                v["scope"],
            )
        console.print(detail)
    skipped = metrics.get("themes", {}).get("skipped_codes") or []
    if skipped:
        console.print(
            f"[dim]{len(skipped)} code(s) with no gold positives skipped in per-code figures.[/]"
        )


def _print_baselines(metrics: dict[str, Any]) -> None:
    """The model beside its baselines, and the value it adds over each."""
    from eval import baselines

    block = metrics["baselines"]
    has_tfidf = baselines.TFIDF in block
    table = Table(title="Baselines: what the model adds")
    table.add_column("metric", no_wrap=True)
    table.add_column("model", justify="right")
    table.add_column("naive baseline", justify="right")
    if has_tfidf:
        table.add_column("TF-IDF", justify="right")
    table.add_column("added value", justify="right")
    if has_tfidf:
        table.add_column("vs TF-IDF", justify="right")
    for key, model, naive, tfidf, over_naive, over_tfidf in baselines.table_rows(metrics, block):
        cells = [key, _fmt(model), _fmt(naive)]
        cells += [_fmt(tfidf)] if has_tfidf else []
        cells += [_signed(over_naive)]
        cells += [_signed(over_tfidf)] if has_tfidf else []
        table.add_row(*cells)
    console.print(table)
    added = "model − naive baseline" + ("; vs TF-IDF: model − TF-IDF" if has_tfidf else "")
    console.print(
        f"[dim]Added value: {added}. Naive: nearest theme by MiniLM cosine; "
        f"{baselines.caption(block)}.[/]",
        highlight=False,
    )
    rows = baselines.curve_rows(metrics.get("learning_curve") or [])
    if rows:
        curve = Table(title="Learning curve: model vs baselines at each training size")
        for column in (
            "training items",
            "metric",
            "model",
            "naive",
            "TF-IDF",
            "+ naive",
            "+ TF-IDF",
        ):
            curve.add_column(
                column,
                justify="left" if column == "metric" else "right",
                no_wrap=column == "metric",
            )
        for n_train, key, model, naive, tfidf, over_naive, over_tfidf in rows:
            curve.add_row(
                str(n_train), key, _fmt(model), _fmt(naive), _fmt(tfidf),
                _signed(over_naive), _signed(over_tfidf),
            )  # fmt: skip
        console.print(curve)



def _with_ci(figures: dict[str, Any], key: str) -> str:
    """A figure with its interval on a dim line below (when it has one)."""
    interval = figures.get("ci", {}).get(key)
    return _fmt(figures.get(key)) + (f"\n[dim]{_ci(figures['ci'].get(key))}[/]" if interval else "")


def print_project_agreement(result: dict[str, Any]) -> None:
    """``coder eval agreement``'s table: model–human beside human–human, figure by figure."""
    model, human = result["model_human"], result["human_human"]
    table = Table(
        title=f"Agreement in the project ({result['proposals']} proposals; "
        f"{len(result['reviewers'])} reviewer(s), {result['n_double_coded']} double-coded responses)"
    )
    table.add_column("figure")
    table.add_column("model–human", justify="right")
    table.add_column("human–human", justify="right")
    keys = [k for k in dict.fromkeys([*model, *human]) if k != "ci"]
    for key in keys:
        table.add_row(key, _with_ci(model, key), _with_ci(human, key))
    console.print(table)


HISTORY_METRICS = (
    "themes.micro_f1", "themes.macro_f1", "themes.samples_f1",
    "stance.accuracy", "stance.kappa", "relevance.f1", "matching.map_strict",
)  # fmt: skip

#: the rows that describe each stored run, above its figures
_HISTORY_INFO = (
    ("date", lambda r: (r.get("created_at") or "")[:16].replace("T", " ")),
    ("backend", lambda r: r.get("backend") or ""),
    ("model", lambda r: str(r.get("model") or "")[-30:]),
    ("items", lambda r: str(r.get("n_items"))),
    ("data", lambda r: (r.get("data_hash") or "")[:8]),
    ("codebook", lambda r: (r.get("codebook_hash") or "")[:8]),
    ("prompt", lambda r: (r.get("prompt_hash") or "")[:8]),
)


def print_history(runs: list[dict[str, Any]], paths: list[str]) -> None:
    """``coder eval history``'s table: one column per stored run, one row per figure."""
    from eval.scoring import lookup

    table = Table(title=f"Eval runs ({len(runs)})")
    table.add_column("")
    for run in runs:
        table.add_column(
            f"#{run['id']}" + (f" {run['name']}" if run.get("name") else ""), justify="right"
        )
    for label, get in _HISTORY_INFO:
        table.add_row(label, *[get(run) for run in runs])
    for path in paths:
        values = []
        for run in runs:
            try:
                values.append(_fmt(lookup(run["metrics"], path)))
            except KeyError:
                values.append("")
        table.add_row(path, *values)
    # The model's margin over each baseline, for the runs that stored baselines.
    for baseline, label in (("naive", "naive"), ("tfidf", "TF-IDF")):
        for path in paths:
            margins = [
                run["metrics"].get("baselines", {}).get("added_value", {}).get(baseline, {})
                for run in runs
            ]
            if any(path in margin for margin in margins):
                table.add_row(
                    f"{path} − {label}", *[_signed(margin.get(path)) for margin in margins]
                )
    console.print(table)


def print_simulation(result: dict[str, Any]) -> None:
    """``coder eval simulate``'s table: reviewer effort per 100 answers, policy by policy."""
    table = Table(
        title=f"Reviewer effort per 100 answers ({result['n_items']} answers, "
        f"{result['retrains']} retrain(s))"
    )
    for column in ("policy", "accepted unchanged", "label edits", "theme", "stance", "relevance"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for effort in result["policies"].values():
        figures = effort["per_100"]
        keys = ("accepted_unchanged", "label_edits", "theme_edits", "stance_edits",
                "relevance_edits")  # fmt: skip
        table.add_row(
            effort["policy"],
            *("–" if figures.get(key) is None else f"{figures[key]:.1f}" for key in keys),
        )
    console.print(table)


def print_stability(result: dict[str, Any], repeat: int) -> None:
    """``coder eval --repeat N``'s table: agreement between runs and against gold."""
    from eval import stability

    table = Table(title=f"coder eval --repeat {repeat}: {result['n_items']} items")
    for column in ("field", "between runs", "against gold (mean ± sd)"):
        table.add_column(column)
    for row in stability.stability_rows(result):
        table.add_row(*row)
    console.print(table)
