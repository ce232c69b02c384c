"""``coder eval``: score classifiers against gold sets; agreement, history and simulated
reviewer effort as its subcommands. The runs themselves are ``eval/``'s; this module
parses options and prints (``coder agree`` is ``coder.cli.agree``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from coder.cli.backends import BackendChoice
from coder.cli.common import (
    F,
    console,
    count_option,
    db_option,
    err_console,
    existing_file_option,
    handle_errors,
    open_store,
    quiet_library_logs,
    repeatable_option,
)
from coder.cli.eval_tables import (
    HISTORY_METRICS,
    print_eval,
    print_history,
    print_project_agreement,
    print_simulation,
    print_stability,
)
from coder.cli.json_output import emit_json, json_options
from coder.errors import CoderError

__all__ = ["eval_"]


def gold_file_options(func: F) -> F:
    """--codebook FILE and --items FILE: a gold set given as two files (or overriding one
    file of a gold folder)."""
    func = existing_file_option("--items", "items_path", help="Gold items JSONL.")(func)
    return existing_file_option(
        "--codebook",
        "codebook_path",
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
@existing_file_option(
    "--predictions",
    "predictions_path",
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
@existing_file_option(
    "--train", "train_path", help="Labelled examples (gold items JSONL) for learning backends."
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
@repeatable_option(
    "--train-filter", "train_filters", metavar="PATH=VALUE",
    help="Train on the items (of --train, else of the gold file) whose field matches, e.g. "
    "meta.source_split=train ('a|b' for either). Repeatable (all must match).",
)  # fmt: skip
@repeatable_option(
    "--test-filter", "test_filters", metavar="PATH=VALUE",
    help="Score only the gold items whose field matches, e.g. meta.source_split=dev. Repeatable.",
)  # fmt: skip
@click.option("--limit", type=int, default=None,
              help="Score only the first N (filtered) items, and train on at most N*4 (quick runs).")
@repeatable_option(
    "--min", "minimums", metavar="PATH=VALUE",
    help="Fail (exit 1) if a metric is below VALUE, e.g. themes.micro_f1=0.6. Repeatable.",
)  # fmt: skip
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
@click.option("--seed", default=0, show_default=True,
              help="Seed for bootstrap, folds and learning-curve samples.")
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
    "--stance-pairs",
    "stance_pairs",
    is_flag=True,
    help="With --fine-tune: also fine-tune a stance cross-encoder on (question, answer) "
    "pairs, used where it beats the current stance model on held-back labels.",
)
@click.option(
    "--theme-pairs",
    "theme_pairs",
    is_flag=True,
    help="With --fine-tune: also fine-tune a theme cross-encoder on (code text, answer) pairs "
    "that re-ranks each answer's top codes, used where it ranks held-back answers' codes "
    "clearly better.",
)
@count_option(
    "--repeat",
    help="Run the backend N times (seeds SEED, SEED+1, ...) and report run-to-run agreement "
    "(alpha/kappa per field) beside agreement with gold.",
)
@click.option("--temperature", type=float, default=None,
              help="With --repeat and --backend openai: the sampling temperature (default 0).")
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



def _command_line() -> str:
    """The command as typed, recorded with a stored run."""
    return "coder " + " ".join(sys.argv[1:])


def _run_repeat(repeat: int, temperature: float | None, **options: Any) -> None:
    """``coder eval --repeat N``: N seeded runs, each scored, and their agreement."""
    from eval import stability

    json_path, as_json = options.pop("json_path"), options.pop("as_json")

    # Every model call is traced into the project's llm_calls, as a single eval run's are.
    store = None if options["no_store"] else open_store(options["db_path"])
    try:
        result, stored = stability.repeat_from_options(
            repeat, temperature, store=store, command=_command_line(), **options
        )
    finally:
        if store is not None:
            store.close()
    print_stability(result, repeat)
    emit_json(result, json_path, as_json)
    if stored:
        err_console.print(f"[dim]Stored as eval run {stored}[/]")


class ConsoleNotices:
    """What an eval run says on the way, printed as ``coder eval`` always has."""

    def warning(self, text: str, details: Sequence[str] = ()) -> None:
        """A warning about the figures, with the results (``console``)."""
        console.print(f"[yellow]{text}[/]")
        for line in details:
            console.print(line, highlight=False, markup=False)

    def progress(self, text: str) -> None:
        """A step done, with the results (``console``)."""
        console.print(text)

    def status(self, text: str, problem: bool) -> None:
        """What the run does now, or a side problem: stderr (ARCHITECTURE rule 7)."""
        err_console.print(f"[yellow]{text}[/]" if problem else f"[dim]{text}[/]")

    @contextmanager
    def fine_tune_bar(self) -> Iterator[Any]:
        """The fine-tuning progress bar of 'coder train --fine-tune'."""
        from coder.cli.train import FineTuneBar

        with FineTuneBar() as bar:
            yield bar

    def fine_tuned(self, result: Any) -> None:
        """The fine-tuning summary of 'coder train --fine-tune'."""
        from coder.cli.train import print_fine_tune

        print_fine_tune(result, None)


def _run_eval(
    *,
    minimums: tuple[str, ...],
    json_path: Path | None,
    as_json: bool,
    report_dir: Path | None,
    name: str | None,
    no_store: bool,
    per_code_rows: int,
    db_path: Path | None,
    **options: Any,
) -> None:
    """One eval run (``eval.evaluation``): run, print, write, store, then the --min gate."""
    from eval.evaluation import (
        EvalOptions,
        check_minimums,
        parse_minimums,
        run_eval,
        store_run,
    )

    thresholds = parse_minimums(minimums)
    if options["predictions_path"] is None and options["backend"] == "openai":
        quiet_library_logs()  # failures are summarised by the run and kept in llm_calls
    run = run_eval(
        EvalOptions(**options),
        ConsoleNotices(),
        None if no_store else lambda: open_store(db_path),
    )
    print_eval(run.metrics, per_code_rows)
    emit_json(run.metrics, json_path, as_json)
    if report_dir:
        from eval.report import write_report

        title = f"coder eval: {run.codebook.name}"
        md, html_path = write_report(run.metrics, report_dir, title=title)
        err_console.print(f"Wrote {md} and {html_path}", highlight=False, markup=False, soft_wrap=True)
    if not no_store:
        with run.call_store or open_store(db_path) as store:
            run_id = store_run(run, store, name=name, command=_command_line())
            err_console.print(f"[dim]Stored as eval run {run_id} in {store.path}[/]")
    check_minimums(run.metrics, thresholds)


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
    print_project_agreement(result)
    print_overlap(result["overlap"])
    emit_json(result, json_path, as_json)


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
    with open_store(db_path) as store:
        runs = store.eval_runs()
    if last:
        runs = runs[-last:]
    if not runs:
        console.print("No eval runs stored yet: run 'coder eval GOLD_FOLDER' first.")
        return
    print_history(runs, list(metrics) or list(HISTORY_METRICS))
    emit_json({"runs": runs}, json_path, as_json)


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
    print_simulation(result)
    emit_json(result, json_path, as_json)
