"""``coder agree`` and ``coder eval``: agreement between coders, and classifiers against gold."""

from __future__ import annotations

import functools
import json
import math
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from coder.cli.backends import BackendChoice
from coder.cli.common import (
    F,
    console,
    db_option,
    err_console,
    handle_errors,
    open_store,
    quiet_library_logs,
    tables_to_stderr,
)
from coder.errors import CoderError
from coder.store import Store

METRIC_CHOICES = (
    "percent", "cohen", "scott", "ac1", "fleiss", "alpha",
    "exact", "jaccard", "f1", "masi_alpha", "mv_alpha",
)  # fmt: skip


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "undefined" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _ci(ci: Any) -> str:
    if not ci or ci[0] is None:
        return ""
    return f"{ci[0]:.3f}–{ci[1]:.3f}"


def json_options(what: str) -> Callable[[F], F]:
    """``--json`` (print ``what`` as JSON on stdout, as every coder command's ``--json``
    does; the tables go to stderr) and ``--json-file FILE`` (also write it to a file)."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with tables_to_stderr(bool(kwargs.get("as_json"))):
                return func(*args, **kwargs)

        wrapped = click.option(
            "--json-file",
            "json_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help=f"Also write {what} as JSON to this file.",
        )(wrapper)
        wrapped = click.option(
            "--json",
            "as_json",
            is_flag=True,
            help=f"Print {what} as JSON on stdout (the tables go to stderr).",
        )(wrapped)
        return wrapped  # type: ignore[return-value]

    return decorate


def _emit_json(data: dict[str, Any], json_path: Path | None, as_json: bool) -> None:
    """Write ``data`` to ``--json-file`` and/or print it for ``--json``."""
    if json_path:
        _write_json(json_path, data)
        err_console.print(f"Wrote {json_path}", highlight=False, markup=False, soft_wrap=True)
    if as_json:
        click.echo(json.dumps(_clean(data), indent=2, ensure_ascii=False))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from coder.atomic import write_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_clean(data), indent=2, ensure_ascii=False) + "\n"
    # Atomic: an interrupted run leaves the previous file whole.
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become null."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


# --- coder agree -----------------------------------------------------------------------
@click.command("agree")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--field",
    "label_column",
    default=None,
    help="Column holding the labels (default: label/code/value...).",
)
@click.option(
    "--coder-column",
    default=None,
    help="Column naming the coder (default: coder/rater/annotator...).",
)
@click.option(
    "--item-column", default=None, help="Column naming the item (default: item/unit/id...)."
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    type=click.Choice(METRIC_CHOICES),
    help="Metric(s) to compute (repeatable; default: all that apply).",
)
@click.option(
    "--level",
    type=click.Choice(["nominal", "ordinal", "interval", "ratio"]),
    default="nominal",
    show_default=True,
    help="Level of measurement (alpha's distance; weighted kappa when not nominal).",
)
@click.option(
    "--multi", is_flag=True, help="Labels are sets (themes): one row per label, or a list per row."
)
@click.option(
    "--categories",
    default=None,
    help="Full ordered category set, comma-separated (weighted kappa and AC1 use all of it, seen or not).",
)
@click.option(
    "--resamples",
    default=1000,
    show_default=True,
    help="Bootstrap resamples for 95% CIs (0 = none).",
)
@click.option("--seed", default=0, show_default=True, help="Bootstrap seed.")
@json_options("the figures")
@handle_errors
def agree(
    file: Path,
    label_column: str | None,
    coder_column: str | None,
    item_column: str | None,
    metrics: tuple[str, ...],
    level: str,
    multi: bool,
    categories: str | None,
    resamples: int,
    seed: int,
    json_path: Path | None,
    as_json: bool,
) -> None:
    """Agreement between coders, from a long-format CSV or JSONL file of (coder, item, label) rows.

    Every pair of coders and all coders together. Single-label fields: percent agreement,
    Cohen's kappa (weighted too when --level is ordinal/interval), Scott's pi, Gwet's AC1,
    Fleiss' kappa, Krippendorff's alpha. With --multi (label sets): exact match, Jaccard,
    F1, alpha with MASI distance, and Krippendorff & Craggs' mv-alpha.
    """
    from eval.agree import MULTI_METRICS, SINGLE_METRICS, compute, load_long

    data = load_long(
        file,
        multi=multi,
        coder_column=coder_column,
        item_column=item_column,
        label_column=label_column,
    )
    if len(data.coders) < 2:
        raise CoderError(f"{file}: agreement needs at least two coders; found {len(data.coders)}")
    wanted = [m for m in metrics if m in (MULTI_METRICS if multi else SINGLE_METRICS)]
    if metrics and not wanted:
        raise CoderError(
            f"none of the metrics {', '.join(metrics)} apply to "
            f"{'label sets' if multi else 'single labels'}"
        )
    result = compute(
        data,
        multi=multi,
        level=level,
        categories=[c.strip() for c in categories.split(",")] if categories else None,
        metrics=wanted or None,
        n_resamples=resamples,
        seed=seed,
    )
    result["file"] = str(file)
    _print_agreement(result)
    _emit_json(result, json_path, as_json)


def _print_agreement(result: dict[str, Any]) -> None:
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


# --- coder eval ---------------------------------------------------------------------------
def gold_file_options(func: F) -> F:
    """--codebook FILE and --items FILE: a gold set given as two files (or overriding one
    file of a gold folder)."""
    func = click.option(
        "--items",
        "items_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Gold items JSONL.",
    )(func)
    return click.option(
        "--codebook",
        "codebook_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Gold codebook file (with --items, or instead of a gold folder's).",
    )(func)


class _GoldOption(click.Option):
    """The hidden --gold that the positional GOLD folder fills: errors name GOLD."""

    def get_error_hint(self, ctx: click.Context | None) -> str:
        return "'GOLD'"


class _EvalGroup(click.Group):
    """``coder eval [GOLD]`` runs an eval; ``coder eval agreement|history`` are subcommands.

    A first positional argument that is not a subcommand is the gold folder (--gold).
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = {
            opt
            for param in self.params
            if isinstance(param, click.Option) and not param.is_flag
            for opt in param.opts
        }
        args = list(args)
        i = 0
        while i < len(args):
            token = args[i]
            if token == "--":
                break
            if token.startswith("-"):
                if token in takes_value and "=" not in token:
                    i += 1
                i += 1
                continue
            if token not in self.commands:
                args[i : i + 1] = ["--gold", token]
            break
        return super().parse_args(ctx, args)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # After GOLD, a further bare word is no subcommand: say what it probably was.
        name = args[0] if args else None
        if name is not None and name not in self.commands:
            hint = (
                f"; --json now prints the JSON on stdout, write a file with --json-file {name}"
                if name.endswith(".json")
                else ""
            )
            raise click.UsageError(f"unexpected argument {name!r}{hint}", ctx)
        return super().resolve_command(ctx, args)


@click.group("eval", cls=_EvalGroup, invoke_without_command=True)
@click.option(
    "--gold",
    "gold_path",
    cls=_GoldOption,
    type=click.Path(exists=True, path_type=Path),
    hidden=True,
    help="The gold folder (given as the first argument, GOLD).",
)
@gold_file_options
@click.option(
    "--predictions",
    "predictions_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Score this predictions JSONL instead of running a backend.",
)
@click.option(
    "--backend",
    type=BackendChoice(),
    default="local",
    show_default=True,
    help="Classifier backend to run (a plugin's too: 'coder backends').",
)
@click.option("--model", default=None, help="Model name (openai backend).")
@click.option(
    "--train",
    "train_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Labelled examples (gold items JSONL) for learning backends.",
)
@click.option(
    "--cv", "cv", type=int, default=None, help="K-fold cross-validation within the gold items."
)
@click.option(
    "--learning-curve",
    "learning_curve",
    default=None,
    help="Training sizes, e.g. 0,50,100,200,500,all (0 = zero-shot on the same test items).",
)
@click.option(
    "--train-filter",
    "train_filters",
    multiple=True,
    metavar="PATH=VALUE",
    help="Train on the items (of --train, else of the gold file) whose field matches, e.g. "
    "meta.source_split=train ('a|b' for either). Repeatable (all must match).",
)
@click.option(
    "--test-filter",
    "test_filters",
    multiple=True,
    metavar="PATH=VALUE",
    help="Score only the gold items whose field matches, e.g. meta.source_split=dev. Repeatable.",
)
@click.option(
    "--limit",
    type=int,
    default=None,
    help="Score only the first N (filtered) items, and train on at most N*4 (quick runs).",
)
@click.option(
    "--min",
    "minimums",
    multiple=True,
    metavar="PATH=VALUE",
    help="Fail (exit 1) if a metric is below VALUE, e.g. themes.micro_f1=0.6. Repeatable.",
)
@json_options("all metrics")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write report.md and report.html here.",
)
@click.option(
    "--resamples", default=1000, show_default=True, help="Bootstrap resamples for 95% CIs."
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    help="Seed for bootstrap, folds and learning-curve samples.",
)
@click.option("--name", default=None, help="A name for this run in the history.")
@click.option("--no-store", is_flag=True, help="Do not record the run in the project's eval_runs.")
@click.option(
    "--no-baselines",
    is_flag=True,
    help="Skip the baselines (naive nearest theme + majority class; TF-IDF when training).",
)
@click.option(
    "--per-code",
    "per_code_rows",
    default=15,
    show_default=True,
    help="Per-code rows to print (0 = none).",
)
@click.option(
    "--fine-tune",
    "fine_tune",
    is_flag=True,
    help="Fine-tune the encoder on the training items first (local backend with --train or "
    "--train-filter; optional extra: pip install 'coder[finetune]').",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Run the backend N times (seeds SEED, SEED+1, ...) and report run-to-run agreement "
    "(alpha/kappa per field) beside agreement with gold.",
)
@click.option(
    "--temperature",
    type=float,
    default=None,
    help="With --repeat and --backend openai: the sampling temperature (default 0).",
)
@db_option
@click.pass_context
@handle_errors
def eval_(ctx: click.Context, **options: Any) -> None:
    """Score a classifier against a gold-coded set (coder eval GOLD_FOLDER, or --codebook/--items).

    Runs the backend (--backend local by default) on the gold items, or scores an existing
    --predictions file, and prints themes (micro/macro/samples F1, per-code P/R/F1/kappa with
    prevalence), stance, relevance and key-point matching mAP, each with a 95% bootstrap CI.

    The local backend runs zero-shot unless given training data: --train FILE (gold-format
    items), --train-filter/--test-filter (e.g. ArgKP: train on meta.source_split=train, score
    meta.source_split=dev), --cv K (pooled out-of-fold predictions), or --learning-curve
    50,100,all (train on the first N of a seeded shuffle of the training pool; scored on the
    --test-filter items, else on a fixed, seeded 20% of the items held out of the pool).
    Every run is stored in the project's eval_runs (--db); see 'coder eval history'.

    Baselines are scored beside every run (--no-baselines skips them): a naive one (each
    answer's nearest theme by MiniLM cosine, among the themes that apply to it; the majority
    stance and relevance, from the training items when the run trains, else from the scored
    items, an optimistic reference) and, when the run trains, TF-IDF + logistic regression
    fitted on the same training items. The model's added value over each is printed and
    stored.

    Subcommands: 'coder eval agreement' (model vs reviewers in a project), 'coder eval history'.
    """
    if ctx.invoked_subcommand is not None:
        return
    repeat, temperature = options.pop("repeat"), options.pop("temperature")
    if repeat > 1 or temperature is not None:
        _run_repeat(repeat, temperature, **options)
        return
    _run_eval(**options)


def _run_repeat(repeat: int, temperature: float | None, **options: Any) -> None:
    """``coder eval --repeat N``: N seeded runs, each scored, and their agreement."""
    from eval import stability

    json_path, as_json = options.pop("json_path"), options.pop("as_json")

    # Every model call is traced into the project's llm_calls, as a single eval run's are.
    store = None if options["no_store"] else open_store(options["db_path"])
    try:
        result, stored = stability.repeat_from_options(
            repeat, temperature, store=store, command="coder " + " ".join(sys.argv[1:]), **options
        )
    finally:
        if store is not None:
            store.close()
    table = Table(title=f"coder eval --repeat {repeat}: {result['n_items']} items")
    for column in ("field", "between runs", "against gold (mean ± sd)"):
        table.add_column(column)
    for row in stability.stability_rows(result):
        table.add_row(*row)
    console.print(table)
    _emit_json(result, json_path, as_json)
    if stored:
        err_console.print(f"[dim]Stored as eval run {stored}[/]")


def _parse_minimums(minimums: tuple[str, ...]) -> list[tuple[str, float]]:
    out = []
    for text in minimums:
        path, sep, value = text.partition("=")
        if not sep or not path.strip():
            raise CoderError(f"--min '{text}': expected PATH=VALUE, e.g. themes.micro_f1=0.6")
        try:
            out.append((path.strip(), float(value)))
        except ValueError:
            raise CoderError(f"--min '{text}': '{value}' is not a number") from None
    return out


def _run_eval(
    *,
    gold_path: Path | None,
    codebook_path: Path | None,
    items_path: Path | None,
    predictions_path: Path | None,
    backend: str,
    model: str | None,
    train_path: Path | None,
    cv: int | None,
    learning_curve: str | None,
    train_filters: tuple[str, ...],
    test_filters: tuple[str, ...],
    limit: int | None,
    minimums: tuple[str, ...],
    json_path: Path | None,
    as_json: bool,
    report_dir: Path | None,
    resamples: int,
    seed: int,
    name: str | None,
    no_store: bool,
    no_baselines: bool,
    per_code_rows: int,
    db_path: Path | None,
    fine_tune: bool = False,
) -> None:
    from eval import baselines, runner
    from eval.gold import data_hash, load_gold, read_items
    from eval.scoring import lookup, read_predictions, score

    thresholds = _parse_minimums(minimums)
    if gold_path is None and (codebook_path is None or items_path is None):
        raise CoderError("give a gold folder (coder eval FOLDER) or --codebook FILE --items FILE")
    codebook, all_items = load_gold(gold_path, codebook=codebook_path, items=items_path)
    train_by = [runner.ItemFilter.parse(text, "--train-filter") for text in train_filters]
    test_by = [runner.ItemFilter.parse(text, "--test-filter") for text in test_filters]
    items = runner.apply_filters(all_items, test_by, "--test-filter")
    if limit is not None:
        items = items[:limit]
    if not items:
        raise CoderError("no gold items to score")
    run_info: dict[str, Any] = {"backend": backend, "model": model, "prompt_hash": None}
    params: dict[str, Any] = {"limit": limit, "seed": seed, "resamples": resamples}
    if train_filters:
        params["train_filter"] = list(train_filters)
    if test_filters:
        params["test_filter"] = list(test_filters)
    params["baselines"] = not no_baselines
    curve: list[dict[str, Any]] = []
    # (training, test) splits the baselines are fitted and scored on: the model's own.
    splits: list[baselines.Split] = [baselines.Split([], items)]
    baseline_block: dict[str, Any] | None = None
    make: runner.BackendFactory | None = None
    call_store: Store | None = None
    mode = "predictions"
    n_train = 0
    if predictions_path is not None:
        if train_path or train_by or cv or learning_curve:
            raise CoderError(
                "--predictions scores an existing file: it cannot be combined with "
                "--train, --train-filter, --cv or --learning-curve"
            )
        predictions = read_predictions(predictions_path)
        run_info = {"backend": "predictions", "model": str(predictions_path), "prompt_hash": None}
        params["predictions"] = str(predictions_path)
    else:
        if fine_tune and (cv or learning_curve):
            raise CoderError(
                "--fine-tune fine-tunes once on --train or --train-filter items: it cannot be "
                "combined with --cv or --learning-curve"
            )
        if cv and (train_path or train_by or learning_curve):
            raise CoderError(
                "--cv trains on the other folds of the scored items: it cannot be combined "
                "with --train, --train-filter or --learning-curve"
            )
        llm_options: dict[str, Any] = {}
        if backend == "openai":
            quiet_library_logs()  # failures are summarised below and kept in llm_calls
            if not no_store:
                # Every model call is traced, as in precode: into the project's llm_calls,
                # under one run id that the stored eval run names. Opened before the run,
                # so the calls of a run that fails half-way are kept.
                call_store = open_store(db_path)
                llm_run_id = uuid.uuid4().hex
                llm_options = {"call_logger": call_store.log_llm_call, "run_id": llm_run_id}
                params["llm_run_id"] = llm_run_id
        make = runner.factory(backend, model, **llm_options)
        make.unlabelled = ([item.to_response() for item in all_items], codebook)
        pool = _training_pool(all_items, items, train_path, train_by, limit, read_items)
        if train_path:
            params["train"] = str(train_path)
        if cv:
            mode = f"{cv}-fold cv"
            predictions, results = runner.cross_validate(make, items, codebook, cv, seed)
            splits = [baselines.Split(t, f) for t, f in runner.cv_splits(items, cv, seed)]
            params["cv"] = cv
            n_train = len(items) - len(items) // cv
        elif learning_curve:
            if not pool:
                # No separate training data: hold out a fixed, seeded 20% of the items.
                pool, items = runner.split_pool(items, seed)
                params["held_out"] = "20% of the scored items (seeded)"
            mode = "learning curve"
            curve, predictions, results, n_train, baseline_block = _learning_curve(
                make, items, pool, codebook, learning_curve, seed, resamples, not no_baselines
            )
            params["learning_curve"] = learning_curve
        else:
            if fine_tune:
                from coder.cli.train import fine_tune_encoder_for_eval

                params["fine_tune"] = fine_tune_encoder_for_eval(make, backend, pool, seed)
            classifier = make()
            if pool and not runner.fit(classifier, pool, codebook):
                console.print(f"[yellow]The {backend} backend does not learn: training ignored.[/]")
                pool = []
            n_train = len(pool)
            mode = "trained" if pool else "zero-shot"
            predictions, results = runner.predict(classifier, items, codebook)
            splits = [baselines.Split(pool, items)]
            run_info["model"] = getattr(classifier, "model", model)
        hashes = {r.prompt_template_hash for r in results if r.prompt_template_hash}
        run_info["prompt_hash"] = ",".join(sorted(hashes)) or None
        failed = [r for r in results if not r.ok]
        if failed:
            console.print(
                f"[yellow]{len(failed)} item(s) failed and are scored as predicting nothing.[/]"
            )
            for result in failed[:3]:
                console.print(
                    f"  failed {result.response_id}: {result.error}", highlight=False, markup=False
                )
    params["mode"] = mode
    params["n_train"] = n_train
    metrics = score(codebook, items, predictions, n_resamples=resamples, seed=seed)
    metrics["run"] = {
        "backend": run_info["backend"],
        "model": run_info["model"],
        "mode": mode,
        "n_train": n_train,
        "cv": cv,
        "seed": seed,
    }
    if curve:
        metrics["learning_curve"] = curve
    if not no_baselines:
        if baseline_block is None:  # a learning curve scored its own, point by point
            naive = _naive_themes(make or runner.factory("local"), codebook, items)
            baseline_block = _baselines(codebook, items, splits, seed, metrics, naive)
        metrics["baselines"] = baseline_block
    metrics["codebook"] = {"name": codebook.name, "hash": codebook.content_hash()}
    _print_eval(metrics, per_code_rows)
    _emit_json(metrics, json_path, as_json)
    if report_dir:
        from eval.report import write_report

        md, html_path = write_report(metrics, report_dir, title=f"coder eval: {codebook.name}")
        err_console.print(f"Wrote {md} and {html_path}", highlight=False, markup=False, soft_wrap=True)
    if not no_store:
        with call_store or open_store(db_path) as store:
            run_id = store.add_eval_run(
                name=name,
                backend=run_info["backend"],
                model=run_info["model"],
                prompt_hash=run_info["prompt_hash"],
                codebook_version=None,
                codebook_hash=codebook.content_hash(),
                data_hash=data_hash(items),
                n_items=len(items),
                params=params,
                metrics=_clean(metrics),
                command="coder " + " ".join(sys.argv[1:]),
            )
            console.print(f"[dim]Stored as eval run {run_id} in {store.path}[/]")
    failures = []
    for path, minimum in thresholds:
        try:
            value = lookup(metrics, path)
        except KeyError:
            raise CoderError(f"--min {path}: no such metric in this run") from None
        if (
            not isinstance(value, int | float)
            or value is None
            or math.isnan(value)
            or value < minimum
        ):
            failures.append(f"{path} = {_fmt(value)} is below the minimum {minimum}")
    if failures:
        raise CoderError("; ".join(failures))


def _baselines(
    codebook: Any,
    items: list[Any],
    splits: list[Any],
    seed: int,
    model_metrics: dict[str, Any],
    naive_themes: Any,
) -> dict[str, Any]:
    """Score the baselines on the run's splits (``naive_themes`` None: no encoder)."""
    from eval import baselines

    return baselines.evaluate(
        codebook,
        items,
        splits,
        naive_themes=naive_themes,
        tfidf=True,
        seed=seed,
        model_metrics=model_metrics,
    )


def _naive_themes(make: Any, codebook: Any, items: list[Any]) -> Any:
    """Nearest-theme predictions with the run's shared encoder (None, with a warning, if absent)."""
    from eval import baselines

    # Progress and warnings go to stderr: stdout is the command's output (ARCHITECTURE rule 7).
    err_console.print("[dim]Scoring baselines (nearest theme, majority class)...[/]")
    predictions, problem = baselines.naive_themes_or_none(codebook, items, make.encoder)
    if problem:
        err_console.print(f"[yellow]No nearest-theme baseline: {problem}[/]")
    return predictions


def _training_pool(
    all_items: list[Any],
    scored: list[Any],
    train_path: Path | None,
    train_by: list[Any],
    limit: int | None,
    read_items: Any,
) -> list[Any]:
    """Training items: --train FILE and/or --train-filter, never an item that is scored."""
    from eval import runner

    if train_path is None and not train_by:
        return []
    source = read_items(train_path) if train_path else all_items
    pool = runner.apply_filters(source, train_by, "--train-filter")
    scored_ids = {item.id for item in scored}
    overlap = [item for item in pool if item.id in scored_ids]
    if overlap:
        # Training on a scored item would inflate every figure: leave those out.
        console.print(
            f"[yellow]{len(overlap)} training item(s) are also scored: left out of training.[/]"
        )
        pool = [item for item in pool if item.id not in scored_ids]
    if limit is not None:
        pool = pool[: limit * 4]
    if not pool:
        raise CoderError("no training items left (every training item is also scored)")
    return pool


CURVE_METRICS = (
    "themes.micro_f1", "themes.macro_f1", "themes.samples_f1", "stance.accuracy",
    "stance.kappa", "relevance.f1", "relevance.kappa", "matching.map_strict",
    "matching.map_relaxed",
)  # fmt: skip


def _learning_curve(
    make: Any,
    test: list[Any],
    pool: list[Any],
    codebook: Any,
    sizes_text: str,
    seed: int,
    resamples: int,
    with_baselines: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any], list[Any], int, dict[str, Any] | None]:
    """Train on the first N of a seeded shuffle of ``pool`` for each size; score on ``test``.

    Returns the curve, and the predictions, results and training size of its last point
    (the headline figures of the run), and that point's baselines (None without them).
    Each point carries its own baselines: the majority and TF-IDF fitted on that point's
    training items (the nearest theme does not learn, so it is computed once).
    """
    from eval import baselines, runner
    from eval.scoring import flatten, score

    sizes = runner.parse_sizes(sizes_text)
    ordered = runner.learning_curve_pool(pool, seed)
    curve = []
    predictions: dict[str, Any] = {}
    results: list[Any] = []
    n_train = 0
    block: dict[str, Any] | None = None
    naive_themes: Any = None
    naive_done = False
    for size in sizes:
        n_train = len(ordered) if size is None else min(size, len(ordered))
        classifier = make()
        runner.fit(classifier, ordered[:n_train], codebook)
        predictions, results = runner.predict(classifier, test, codebook)
        point = score(codebook, test, predictions, n_resamples=resamples, seed=seed)
        flat = flatten(point)
        curve.append(
            {
                "n_train": n_train,
                "n_test": len(test),
                **{key: flat.get(key) for key in CURVE_METRICS if key in flat},
                "ci": {key: point["ci"][key] for key in CURVE_METRICS if key in point["ci"]},
            }
        )
        if with_baselines:
            if not naive_done:  # the nearest theme does not learn: once for every point
                naive_themes, naive_done = _naive_themes(make, codebook, test), True
            split = baselines.Split(ordered[:n_train], test)
            block = _baselines(codebook, test, [split], seed, point, naive_themes)
            curve[-1]["baselines"] = baselines.curve_point(block)
        console.print(
            f"learning curve: {n_train} training items -> micro F1 "
            f"{_fmt(flat.get('themes.micro_f1'))}, macro F1 {_fmt(flat.get('themes.macro_f1'))}"
        )
    return curve, predictions, results, n_train, block


def _print_eval(metrics: dict[str, Any], per_code_rows: int) -> None:
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


def _signed(value: Any) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "–"
    return f"{value:+.3f}"


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


@eval_.command("agreement")
@db_option
@click.option(
    "--first", is_flag=True, help="Use the model's first proposal of each response, not the latest."
)
@click.option(
    "--resamples", default=1000, show_default=True, help="Bootstrap resamples for 95% CIs."
)
@json_options("the figures")
@handle_errors
def eval_agreement(
    db_path: Path | None, first: bool, resamples: int, json_path: Path | None, as_json: bool
) -> None:
    """Model vs reviewers, and reviewer vs reviewer, inside a project.

    The model's proposals against the reviewers' final labels, shown beside the agreement
    between reviewers on double-coded responses (the human ceiling to compare against).
    With an assignment ('coder assign'), also agreement on its double-coded answers pair
    by pair and model vs each reviewer there, with how many are left to adjudicate.
    """
    from coder.cli.team import print_overlap
    from eval.overlap import overlap_agreement
    from eval.project import project_agreement

    with open_store(db_path) as store:
        result = project_agreement(store, first=first, n_resamples=resamples)
        # The answers `coder assign` gave to two reviewers: agreement pair by pair.
        result["overlap"] = overlap_agreement(store, n_resamples=resamples)
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
        table.add_row(
            key,
            _fmt(model.get(key))
            + (f"\n[dim]{_ci(model['ci'].get(key))}[/]" if model.get("ci", {}).get(key) else ""),
            _fmt(human.get(key))
            + (f"\n[dim]{_ci(human['ci'].get(key))}[/]" if human.get("ci", {}).get(key) else ""),
        )
    console.print(table)
    print_overlap(result["overlap"])
    _emit_json(result, json_path, as_json)


HISTORY_METRICS = (
    "themes.micro_f1", "themes.macro_f1", "themes.samples_f1",
    "stance.accuracy", "stance.kappa", "relevance.f1", "matching.map_strict",
)  # fmt: skip


@eval_.command("history")
@db_option
@click.option("--metric", "metrics", multiple=True, help="Metric paths to show (repeatable).")
@click.option("--last", type=int, default=None, help="Only the last N runs.")
@json_options("the runs")
@handle_errors
def eval_history(
    db_path: Path | None,
    metrics: tuple[str, ...],
    last: int | None,
    json_path: Path | None,
    as_json: bool,
) -> None:
    """Compare stored eval runs side by side (one column per run)."""
    from eval.scoring import lookup

    with open_store(db_path) as store:
        runs = store.eval_runs()
    if last:
        runs = runs[-last:]
    if not runs:
        console.print("No eval runs stored yet: run 'coder eval GOLD_FOLDER' first.")
        return
    paths = list(metrics) or list(HISTORY_METRICS)
    table = Table(title=f"Eval runs ({len(runs)})")
    table.add_column("")
    for run in runs:
        table.add_column(
            f"#{run['id']}" + (f" {run['name']}" if run.get("name") else ""), justify="right"
        )
    info_rows = (
        ("date", lambda r: (r.get("created_at") or "")[:16].replace("T", " ")),
        ("backend", lambda r: r.get("backend") or ""),
        ("model", lambda r: str(r.get("model") or "")[-30:]),
        ("items", lambda r: str(r.get("n_items"))),
        ("data", lambda r: (r.get("data_hash") or "")[:8]),
        ("codebook", lambda r: (r.get("codebook_hash") or "")[:8]),
        ("prompt", lambda r: (r.get("prompt_hash") or "")[:8]),
    )
    for label, get in info_rows:
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
    _emit_json({"runs": runs}, json_path, as_json)


@eval_.command("simulate")
@click.argument(
    "gold_path", metavar="GOLD", type=click.Path(exists=True, path_type=Path), required=False
)
@gold_file_options
@click.option(
    "--retrain-every",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Retrain after every N decisions, as 'coder review --retrain-every' (0: never).",
)
@click.option(
    "--fine-tune",
    "fine_tune",
    is_flag=True,
    help="Retrain with 'coder train --fine-tune' (optional extra: pip install 'coder[finetune]').",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Review a seeded sample of N items.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample and import order.")
@click.option(
    "--project",
    "project_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Keep the simulated project file here (a new file; default: a temporary one).",
)
@json_options("the figures")
@handle_errors
def eval_simulate(
    gold_path: Path | None,
    codebook_path: Path | None,
    items_path: Path | None,
    retrain_every: int,
    fine_tune: bool,
    limit: int | None,
    seed: int,
    project_path: Path | None,
    json_path: Path | None,
    as_json: bool,
) -> None:
    """Reviewer effort: replay a gold set as the reviewer, in coder's own queue order.

    Builds a project from the gold answers, pre-codes it zero-shot, then reviews it as the
    review app would (least confident first), giving each answer its gold labels and
    retraining every --retrain-every decisions. Prints, per 100 answers, the proposals
    accepted unchanged and the label edits needed (theme additions + removals + stance
    change + relevance change), beside coding with no model and zero-shot without retraining.
    """
    import tempfile

    from eval.gold import load_gold
    from eval.simulate import simulate

    if gold_path is None and (codebook_path is None or items_path is None):
        raise CoderError("give a gold folder (coder eval simulate FOLDER) or --codebook and --items")
    codebook, items = load_gold(gold_path, codebook=codebook_path, items=items_path)
    if fine_tune:
        from coder.embedded.finetune import require_finetune

        require_finetune()

    def report(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            err_console.print(f"[dim]simulate: {done}/{total} reviewed[/]")

    with tempfile.TemporaryDirectory(prefix="coder-simulate-") as folder:
        project = project_path or Path(folder) / "simulated.db"
        result = simulate(
            codebook,
            items,
            project,
            retrain_every=retrain_every,
            fine_tune=fine_tune,
            limit=limit,
            seed=seed,
            progress=report,
        ).as_dict()
    if project_path is None:
        result["project"] = None
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
    _emit_json(result, json_path, as_json)
