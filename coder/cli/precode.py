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

from coder.backends.base import Classifier, ProposalResult, get_classifier
from coder.cli.backends import BackendChoice, parse_plugin_options
from coder.cli.common import (
    console,
    db_option,
    err_console,
    handle_errors,
    open_store,
    quiet_library_logs,
)
from coder.errors import BackendError
from coder.precode import PrecodeSummary, precode, responses_to_precode, save_redactions
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


def _build_classifier(backend: str, options: dict[str, Any], store: Store | None = None) -> Classifier:
    if backend == "local":
        # The project's latest trained model (coder train / review retraining), else zero-shot.
        local_options: dict[str, Any] = {"model_store": store}
        if options.get("model"):
            local_options["model"] = options["model"]
        try:
            return get_classifier("local", **local_options)
        except ImportError as error:
            raise BackendError(f"the local backend is not available: {error}") from error
    if backend == "openai" and store is not None:
        # The project's reviewed answers size the shortlist and give examples.
        return get_classifier(backend, model_store=store, **options)
    return get_classifier(backend, **options)


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
@click.option("--model", default=None, help="Model name (openai backend), e.g. gpt-4o-mini.")
@click.option(
    "--base-url", default=None, help="Endpoint base URL (default $OPENAI_BASE_URL or OpenAI)."
)
@click.option(
    "--api-key-env",
    default=None,
    help="Environment variable holding the API key (default OPENAI_API_KEY). Keys are never stored.",
)
@click.option(
    "--mode",
    type=click.Choice(["tools", "json", "json_schema", "md_json"]),
    default=None,
    help="instructor mode (default: json_schema for OpenAI, tools for llama.cpp/vLLM, json for Ollama).",
)
@click.option(
    "--concurrency", type=int, default=None, help="Requests in flight at once (default 4)."
)
@click.option("--batch-size", type=int, default=None, help="Responses per request (default 1).")
@click.option("--temperature", type=float, default=None, help="Sampling temperature (default 0).")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="TOML or YAML file of LLM settings (flags override it).",
)
@click.option(
    "--prices",
    "prices_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Price table override: model -> {input, output} USD per 1M tokens.",
)
@click.option(
    "--redo", is_flag=True, help="Propose again for responses that already have a proposal."
)
@click.option("--limit", type=int, default=None, help="At most this many responses.")
@click.option("--dry-run", is_flag=True, help="Print calls, tokens and cost; send nothing.")
@click.option(
    "--no-redact",
    is_flag=True,
    help="Send text as it is (PII redaction is on for non-local endpoints).",
)
@click.option(
    "--batch-api", is_flag=True, help="Use the OpenAI Batch API (half price, up to 24 h)."
)
@click.option(
    "--resume", "resume_batch", default=None, help="With --batch-api: a batch id to resume."
)
@click.option(
    "--poll-interval", type=float, default=None, help="With --batch-api: seconds between polls."
)
@click.option(
    "--no-shortlist",
    is_flag=True,
    help="Send every response the whole codebook (by default the local model shortlists "
    "the likeliest themes for each response's prompt).",
)
@click.option(
    "--shortlist-size",
    type=click.IntRange(min=1),
    default=None,
    help="Themes per shortlisted prompt (default: chosen on reviewed answers for 98% "
    "recall, else 60% of the question's themes, at least 12).",
)
@click.option(
    "--examples",
    type=click.IntRange(min=0),
    default=None,
    help="Similar reviewed answers shown with their labels in each prompt (default 3 when "
    "there are reviewed answers; 0 turns them off).",
)
@click.option(
    "--context-window",
    type=click.IntRange(min=256),
    default=None,
    help="The model's context window in tokens (default: what a local server reports); "
    "prompts are fitted to it.",
)
@click.option(
    "--max-attempts", type=int, default=None, help="Transport attempts per request (default 6)."
)
@click.option(
    "--initial-wait", type=float, default=None, help="First retry wait in seconds (default 1)."
)
@click.option(
    "--request-timeout",
    type=float,
    default=None,
    help="Seconds for one whole request, answer included (default 120); a server that "
    "sends its answer too slowly is cut off and retried.",
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
    "--samples",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="LLM samples per answer (seeds SEED, SEED+1, ...); the proposal is their majority, "
    "its confidence their agreement. Use with --temperature above 0.",
)
@click.option(
    "--seed", type=int, default=None, help="Sampling seed sent with every LLM request (recorded)."
)
@handle_errors
def precode_command(
    db_path: Path | None,
    backend: str | None,
    model: str | None,
    base_url: str | None,
    api_key_env: str | None,
    mode: str | None,
    concurrency: int | None,
    batch_size: int | None,
    temperature: float | None,
    config_file: str | None,
    prices_file: str | None,
    redo: bool,
    limit: int | None,
    dry_run: bool,
    no_redact: bool,
    batch_api: bool,
    resume_batch: str | None,
    poll_interval: float | None,
    max_attempts: int | None,
    initial_wait: float | None,
    request_timeout: float | None,
    no_shortlist: bool = False,
    shortlist_size: int | None = None,
    examples: int | None = None,
    context_window: int | None = None,
    plugin_options: tuple[str, ...] = (),
    cascade: bool = False,
    cascade_precision: float | None = None,
    samples: int = 1,
    seed: int | None = None,
) -> None:
    """Propose labels for responses that have none for the current codebook version.

    Each proposal is committed as it arrives, so an interrupted run resumes where it
    stopped; failures are stored and retried on the next run. The default backend is
    'local' (offline). With '--backend openai' text goes to the endpoint (PII redacted
    unless it is on this machine); every call is logged with tokens and cost.
    """
    from coder.llm.config import endpoint_configured_in_env

    quiet_library_logs()
    if backend is None:
        backend = "openai" if batch_api else "local"
        if backend == "local" and endpoint_configured_in_env():
            err_console.print(
                "hint: an OpenAI endpoint is configured in the environment; using the local "
                "backend. Pass --backend openai to send text to it.",
                highlight=False,
                soft_wrap=True,
            )
    options: dict[str, Any] = {
        "model": model,
        "base_url": base_url,
        "api_key_env": api_key_env,
        "mode": mode,
        "concurrency": concurrency,
        "batch_size": batch_size,
        "temperature": temperature,
        "config_file": config_file,
        "prices_file": prices_file,
        "redact": False if no_redact else None,
        "batch_poll_interval": poll_interval,
        "max_attempts": max_attempts,
        "initial_wait": initial_wait,
        "request_timeout": request_timeout,
        "shortlist": False if no_shortlist else None,
        "shortlist_size": shortlist_size,
        "examples": examples,
        "context_window": context_window,
        "seed": seed,
    }
    options = {key: value for key, value in options.items() if value is not None}
    if backend not in ("local", "openai"):
        # A plugin backend: it gets --model and its own -o KEY=VALUE options.
        ignored = sorted(set(options) - {"model"})
        if ignored:
            raise BackendError(f"option(s) for the openai backend only: {', '.join(ignored)}")
        options.update(parse_plugin_options(plugin_options))
    elif plugin_options:
        raise BackendError("-o/--option is for plugin backends ('coder backends' lists them)")
    if backend == "local":
        ignored = sorted(set(options) - {"model"})
        if ignored:
            raise BackendError(f"option(s) for the openai backend only: {', '.join(ignored)}")
    if batch_api and backend != "openai":
        raise BackendError("--batch-api needs --backend openai")
    _check_cascade_options(backend, cascade, cascade_precision, samples, batch_api, dry_run)

    store = open_store(db_path)
    try:
        classifier = _build_classifier(backend, options, store)
        if dry_run:
            _dry_run(store, classifier, redo=redo, limit=limit)
            return
        if batch_api:
            _run_batch_api(store, classifier, resume_batch, redo=redo, limit=limit)
            return
        with RichPrecodeProgress(classifier) as progress:
            if cascade:
                cascade_summary = _run_cascade(
                    store, classifier, cascade_precision, progress, redo, limit
                )
            else:
                summary = precode(
                    store, classifier, redo=redo, limit=limit, progress=progress, samples=samples
                )
        if cascade:
            _print_cascade(cascade_summary, classifier)
        else:
            _print_summary(summary, classifier)
    finally:
        store.close()


def _dry_run(store: Any, classifier: Classifier, *, redo: bool, limit: int | None) -> None:
    version, codebook = store.codebook()
    todo = responses_to_precode(store, version, redo=redo, limit=limit)
    estimate = getattr(classifier, "estimate", None)
    if estimate is None:
        console.print(
            f"dry run: {len(todo)} responses to pre-code with the {classifier.backend} backend "
            f"({classifier.model}); no calls, no cost.",
            highlight=False,
        )
        return
    cached = 0
    input_hash = getattr(classifier, "input_hash", None)
    if input_hash is not None:
        remaining = []
        for response in todo:
            if store.cached_proposal(input_hash(response, codebook)) is None:
                remaining.append(response)
            else:
                cached += 1
        todo = remaining
    result = estimate(todo, codebook)
    cost = (
        "unknown (model not in the price table)"
        if result.cost_usd is None
        else f"${result.cost_usd:.4f}"
    )
    console.print(
        f"dry run: {len(todo)} responses ({cached} served from cache) -> {result.calls} calls to "
        f"{result.model} at {result.base_url}\n"
        f"  estimated tokens: {result.prompt_tokens} in, {result.completion_tokens} out "
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
        version, codebook = store.codebook()
        todo = responses_to_precode(store, version, redo=redo, limit=limit)
        if not todo:
            console.print("nothing to pre-code")
            return
        if classifier.redacts:
            save_redactions(store, todo)
        job = batch_api.submit_batch(store, classifier, codebook, version, todo)
        batch_id = job.batch_id
        console.print(
            f"submitted batch {batch_id} ({len(todo)} requests); if interrupted, resume with "
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


def _check_cascade_options(
    backend: str,
    cascade: bool,
    cascade_precision: float | None,
    samples: int,
    batch_api: bool,
    dry_run: bool,
) -> None:
    if cascade_precision is not None and not cascade:
        raise BackendError("--cascade-precision goes with --cascade")
    if cascade and backend != "openai":
        raise BackendError("--cascade needs --backend openai (the local model is its first stage)")
    if (cascade or samples > 1) and (batch_api or dry_run):
        raise BackendError("--cascade and --samples cannot be combined with --batch-api or --dry-run")
    if cascade and samples > 1:
        raise BackendError("--cascade and --samples cannot be combined (yet): choose one")


def _run_cascade(
    store: Store,
    classifier: Classifier,
    precision: float | None,
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
    )


def _print_cascade(summary: Any, classifier: Classifier) -> None:
    _print_summary(summary.llm, classifier)
    saved = "unknown" if summary.saved_cost_usd is None else f"${summary.saved_cost_usd:.4f}"
    console.print(
        f"cascade: {summary.todo} to do; {summary.settled} settled by the local model, "
        f"{summary.sent} sent to the LLM ({summary.llm_share:.1%}); saved about "
        f"{summary.saved_calls} calls, {summary.saved_prompt_tokens}+"
        f"{summary.saved_completion_tokens} tokens, {saved} (chars/4 estimate)",
        highlight=False,
    )
