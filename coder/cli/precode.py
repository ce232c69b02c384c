"""``coder precode``: propose labels for every response, with either backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from coder.backends.base import Classifier, ProposalResult
from coder.backends.options import BUILT_IN, backend_options, build_classifier, default_backend
from coder.cli.backends import BackendChoice, parse_plugin_options
from coder.cli.common import (
    console,
    count_option,
    db_option,
    err_console,
    handle_errors,
    open_store,
    quiet_library_logs,
)
from coder.cli.llm_options import openai_options, openai_settings
from coder.precode import PrecodeSummary, check_run_modes, precode
from coder.precode_estimate import DryRun
from coder.precode_estimate import dry_run as dry_run_estimate
from coder.store import Store


class RichPrecodeProgress:
    """A progress bar with rate, ETA, failures and spend so far."""

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier
        self.progress = Progress(
            TextColumn("[bold]precode[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn(
                "failed {task.fields[failed]}  cached {task.fields[cached]}  {task.fields[spend]}"
            ),
            console=console,
            transient=False,
        )
        self.task_id: Any = None

    def __enter__(self) -> RichPrecodeProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, total: int) -> None:
        self.task_id = self.progress.add_task(
            "precode", total=total, failed=0, cached=0, spend="", rate="0.0"
        )

    def advance(self, result: ProposalResult, summary: PrecodeSummary) -> None:
        stats = getattr(self.classifier, "stats", None)
        spend = ""
        if stats is not None:
            spend = f"${stats.cost_usd:.4f}" if stats.cost_known else "$? (unknown price)"
            spend += f"  {stats.calls} calls"
        task = self.progress.tasks[self.task_id]
        elapsed = task.elapsed or 0.0
        rate = f"{(task.completed + 1) / elapsed:.1f}" if elapsed > 0 else "0.0"
        self.progress.update(
            self.task_id,
            advance=1,
            failed=summary.failed,
            cached=summary.cached,
            spend=spend,
            rate=rate,
        )


@click.command("precode")
@db_option
@click.option(
    "--backend",
    type=BackendChoice(),
    default=None,
    help="'local' (offline, default), 'openai' (any OpenAI-compatible endpoint) or a "
    "plugin's backend ('coder backends' lists them).",
)
@click.option(
    "-o",
    "--option",
    "plugin_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option for a plugin backend (repeatable).",
)
@openai_options
@click.option(
    "--redo", is_flag=True, help="Propose again for responses that already have a proposal."
)
@click.option("--limit", type=int, default=None, help="At most this many responses.")
@click.option("--dry-run", is_flag=True, help="Print calls, tokens and cost; send nothing.")
@click.option(
    "--batch-api", is_flag=True, help="Use the OpenAI Batch API (half price, up to 24 h)."
)
@click.option(
    "--resume", "resume_batch", default=None, help="With --batch-api: a batch id to resume."
)
@click.option(
    "--cascade",
    is_flag=True,
    help="With --backend openai: the local model settles the answers it is confident about "
    "(cut calibrated on reviewed answers) and only the rest go to the LLM.",
)
@click.option(
    "--cascade-precision",
    type=float,
    default=None,
    help="With --cascade: the agreement with reviewers the settled answers must reach, per "
    "field (default: the LLM's measured agreement, else 0.9).",
)
@click.option(
    "--cascade-rule",
    type=click.Choice(["best", "single", "per-field", "joint"]),
    default="best",
    show_default=True,
    help="With --cascade: which rule settles answers: one confidence cut, a cut per field, "
    "a cut on the joint 'whole proposal right' score, or whichever of them settles most "
    "held-out reviewed answers at the target.",
)
@count_option(
    "--samples",
    help="LLM samples per answer (seeds SEED, SEED+1, ...); the proposal is their majority, "
    "its confidence their agreement. Use with --temperature above 0.",
)
@handle_errors
def precode_command(
    db_path: Path | None,
    backend: str | None,
    plugin_options: tuple[str, ...],
    redo: bool,
    limit: int | None,
    dry_run: bool,
    batch_api: bool,
    resume_batch: str | None,
    cascade: bool,
    cascade_precision: float | None,
    cascade_rule: str,
    samples: int,
    **llm: Any,
) -> None:
    """Propose labels for responses that have none for the current codebook version.

    Each proposal is committed as it arrives, so an interrupted run resumes where it
    stopped; failures are stored and retried on the next run. The default backend is
    'local' (offline). With '--backend openai' text goes to the endpoint (PII redacted
    unless it is on this machine); every call is logged with tokens and cost.
    """
    quiet_library_logs()
    if backend is None:
        backend = default_backend(batch_api)
        _hint_configured_endpoint(backend)
    plugin = parse_plugin_options(plugin_options) if backend not in BUILT_IN else {}
    options = backend_options(
        backend, openai_settings(llm), plugin, plugin_given=bool(plugin_options)
    )
    check_run_modes(
        backend,
        cascade=cascade,
        cascade_precision=cascade_precision,
        cascade_rule=cascade_rule,
        samples=samples,
        batch_api=batch_api,
        dry_run=dry_run,
    )
    with open_store(db_path) as store:
        classifier = build_classifier(backend, options, store)
        _say_proxy(classifier)
        if dry_run:
            _print_dry_run(dry_run_estimate(store, classifier, redo=redo, limit=limit), classifier)
        elif batch_api:
            _run_batch_api(store, classifier, resume_batch, redo=redo, limit=limit)
        elif cascade:
            with RichPrecodeProgress(classifier) as progress:
                rules = _cascade_rules(cascade_rule)
                result = _run_cascade(
                    store, classifier, cascade_precision, rules, progress, redo, limit
                )
            _print_cascade(result, classifier)
        else:
            with RichPrecodeProgress(classifier) as progress:
                summary = precode(
                    store, classifier, redo=redo, limit=limit, progress=progress, samples=samples
                )
            _print_summary(summary, classifier)


def _say_proxy(classifier: Classifier) -> None:
    """Name the proxy the model calls go through (a wrong one is the first thing to rule out)."""
    routes = getattr(classifier, "proxy_routes", None)
    if routes is None:
        return
    proxy = routes().for_endpoint(classifier.settings.resolved_base_url)  # type: ignore[attr-defined]
    if proxy:
        err_console.print(f"Model calls go through the proxy {proxy}", highlight=False)


def _hint_configured_endpoint(backend: str) -> None:
    """Say that the local backend was chosen although an OpenAI endpoint is configured."""
    from coder.llm.config import endpoint_configured_in_env

    if backend == "local" and endpoint_configured_in_env():
        err_console.print(
            "hint: an OpenAI endpoint is configured in the environment; using the local "
            "backend. Pass --backend openai to send text to it.",
            highlight=False,
            soft_wrap=True,
        )


def _print_dry_run(result: DryRun, classifier: Classifier) -> None:
    estimate = result.estimate
    if estimate is None:
        console.print(
            f"dry run: {result.todo} responses to pre-code with the {classifier.backend} backend "
            f"({classifier.model}); no calls, no cost.",
            highlight=False,
        )
        return
    cost = (
        "unknown (model not in the price table)"
        if estimate.cost_usd is None
        else f"${estimate.cost_usd:.4f}"
    )
    console.print(
        f"dry run: {result.todo} responses ({result.cached} served from cache) -> "
        f"{estimate.calls} calls to {estimate.model} at {estimate.base_url}\n"
        f"  estimated tokens: {estimate.prompt_tokens} in, {estimate.completion_tokens} out "
        f"(chars/4 estimate)\n  estimated cost: {cost}",
        highlight=False,
    )


def _run_batch_api(
    store: Any, classifier: Any, resume_batch: str | None, *, redo: bool, limit: int | None
) -> None:
    from coder.llm import batch_api

    classifier.call_logger = store.log_llm_call
    batch_id = resume_batch or batch_api.pending_batch_id(store)
    if batch_id is None:
        job, requests = batch_api.start_batch(store, classifier, redo=redo, limit=limit)
        if job is None:
            console.print("nothing to pre-code")
            return
        batch_id = job.batch_id
        console.print(
            f"submitted batch {batch_id} ({requests} requests); if interrupted, resume with "
            f"'coder precode --batch-api --resume {batch_id}'",
            highlight=False,
        )
    else:
        console.print(f"resuming batch {batch_id}", highlight=False)

    def on_poll(status: str, counts: Any) -> None:
        console.print(f"  batch {batch_id}: {status} {counts or ''}", highlight=False)

    summary = batch_api.wait_and_ingest(store, classifier, batch_id, on_poll=on_poll)
    _print_summary(summary, classifier)


def _print_summary(summary: PrecodeSummary, classifier: Classifier) -> None:
    cost = "unknown" if summary.cost_usd is None else f"${summary.cost_usd:.4f}"
    console.print(
        f"precode: {summary.proposed} proposed ({summary.cached} from cache), {summary.failed} failed, "
        f"{summary.already_done} already done; {summary.calls} calls, "
        f"{summary.prompt_tokens}+{summary.completion_tokens} tokens, cost {cost}"
        + (f"; {summary.redacted} redacted" if summary.redacted else "")
        + (
            f"; {summary.flagged_injection} flagged possible prompt injection"
            if summary.flagged_injection
            else ""
        ),
        highlight=False,
    )
    for error in summary.errors[:5]:
        err_console.print(f"  failed {error}", highlight=False, markup=False)
    if summary.failed:
        err_console.print(
            "failed responses are stored and retried on the next 'coder precode'", highlight=False
        )


def _cascade_rules(choice: str) -> tuple[str, ...]:
    """The rules ``--cascade-rule`` lets compete (``best``: all of them)."""
    from coder.cascade import RULES

    return RULES if choice == "best" else (choice.replace("-", "_"),)


def _run_cascade(
    store: Store,
    classifier: Classifier,
    precision: float | None,
    rules: tuple[str, ...],
    progress: RichPrecodeProgress,
    redo: bool,
    limit: int | None,
) -> Any:
    from coder.cascade import cascade

    def announce(calibration: Any) -> None:
        err_console.print(calibration.describe(), highlight=False, soft_wrap=True)

    return cascade(
        store,
        classifier,
        precision=precision,
        redo=redo,
        limit=limit,
        progress=progress,
        on_calibrated=announce,
        rules=rules,
    )


def _twins_part(summary: Any) -> str:
    """How many of the settled answers repeat reviewed ones, or why none were settled so."""
    check = summary.calibration.twin_check if summary.calibration else None
    if check is None:
        return ""
    if check.trusted:
        return f"; {summary.settled_by_twins} of the settled worded as reviewed answers"
    return f"; reviewed twins not used: {check.reason}"


def _print_cascade(summary: Any, classifier: Classifier) -> None:
    _print_summary(summary.llm, classifier)
    saved = "unknown" if summary.saved_cost_usd is None else f"${summary.saved_cost_usd:.4f}"
    console.print(
        f"cascade: {summary.todo} to do; {summary.settled} settled by the local model, "
        f"{summary.sent} sent to the LLM ({summary.llm_share:.1%}); saved about "
        f"{summary.saved_calls} calls, {summary.saved_prompt_tokens}+"
        f"{summary.saved_completion_tokens} tokens, {saved} (chars/4 estimate){_twins_part(summary)}",
        highlight=False,
    )
