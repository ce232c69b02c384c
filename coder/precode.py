"""The pre-coding pipeline, the same for both backends.

``precode`` picks the responses without a successful proposal for the current codebook
version (all of them with ``redo``), serves identical inputs from the cache, asks the
classifier for the rest and stores every result as it arrives: ok results as
``status='ok'``, errors as ``status='failed'`` rows with the error text (retried on
the next run). The LLM backend streams results and each is committed at once; the
embedded backend is synchronous and batch-oriented, so it is called in chunks and each
chunk is stored in one transaction. Either way a killed run loses at most the
requests in flight.

Two variants share this path: ``samples`` > 1 asks an LLM backend N times per answer
(seeds ``seed``, ``seed + 1``, ...) and stores the majority (``coder/stability.py``),
chunk by chunk; ``coder/cascade.py`` passes the responses it sends to the LLM
(``responses``) with a ``route`` marker per response, merged into each row's ``params``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from coder import event_loop, precode_queries, stability
from coder.backends.base import Classifier, ProposalResult, ProposalSource
from coder.errors import BackendError
from coder.injection import FLAG as INJECTION_FLAG
from coder.injection import looks_like_prompt_injection
from coder.llm_call_queries import CallLog
from coder.precode_queries import count_to_precode
from coder.redact import redact
from coder.store import Store
from schemas import Codebook, Response

LOCAL_CHUNK = 256


class PrecodeProgress(Protocol):
    """What the pipeline reports to (the CLI's rich progress bar implements it)."""

    def start(self, total: int) -> None: ...

    def advance(self, result: ProposalResult, summary: PrecodeSummary) -> None: ...


@dataclass
class PrecodeSummary:
    """Counts of one run."""

    total_responses: int = 0
    todo: int = 0
    proposed: int = 0
    failed: int = 0
    cached: int = 0
    already_done: int = 0
    flagged_injection: int = 0
    redacted: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    run_id: str | None = None
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["errors"] = self.errors[:10]
        return data


def responses_to_precode(
    store: Store, codebook_version: int, *, redo: bool = False, limit: int | None = None
) -> list[Response]:
    """Responses without a successful proposal for ``codebook_version`` (all with ``redo``).

    ``limit`` is applied in SQL: ``--limit 3000`` on a 500,000-response project reads 3,000.
    """
    ids = precode_queries.ids_to_precode(store, codebook_version, redo=redo, limit=limit)
    by_id = {response.id: response for response in store.responses(ids=ids)} if ids else {}
    return [by_id[i] for i in ids if i in by_id]


def prior_sample(store: Store, per_question: int, seed: int = 0) -> list[Response]:
    """The answers the embedded classifier's ``prepare`` would sample from the whole project
    (``per_question`` per question, seeded, questions in order of first import), read
    without loading every response: the same rng draws over the same group sizes.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    sample: list[Response] = []
    for question, count in store.question_counts():
        if count > per_question:
            positions = sorted(int(i) for i in rng.choice(count, per_question, False))
        else:
            positions = list(range(count))
        sample.extend(store.responses_at(question, positions))
    return sample


def save_redactions(store: Store, responses: Iterable[Response]) -> int:
    """Store the redacted text beside each original; returns how many had PII."""
    rows = []
    changed = 0
    for response in responses:
        redaction = redact(response.text)
        changed += int(redaction.changed)
        rows.append((redaction.text, json.dumps(dict(redaction.found)), response.id))
    precode_queries.save_redacted_texts(store, rows)
    return changed


def injection_flagged(result: ProposalResult, response: Response) -> bool:
    """True (and the proposal flagged) when the answer looks like a prompt injection."""
    if result.proposal is None or not looks_like_prompt_injection(response.text):
        return False
    if INJECTION_FLAG not in result.proposal.flags:
        result.proposal.flags.append(INJECTION_FLAG)
    return True


def precode(
    store: Store,
    classifier: Classifier,
    *,
    redo: bool = False,
    limit: int | None = None,
    progress: PrecodeProgress | None = None,
    chunk_size: int = LOCAL_CHUNK,
    responses: Sequence[Response] | None = None,
    route: Mapping[str, dict[str, Any]] | None = None,
    samples: int = 1,
) -> PrecodeSummary:
    """Pre-code the project's responses with ``classifier``; see the module docstring.

    ``responses`` replaces the selection of what to do (the cascade's share for the LLM);
    ``route`` adds per-response entries to each stored row's ``params``; ``samples`` > 1
    stores the majority of that many LLM samples per answer.
    """
    _check_samples(classifier, samples)
    codebook_version, codebook = store.codebook()
    summary = PrecodeSummary(total_responses=store.count_responses())
    if responses is not None:
        todo = list(responses)
    else:
        todo = responses_to_precode(store, codebook_version, redo=redo, limit=limit)
    summary.todo = len(todo)
    if not redo:
        summary.already_done = summary.total_responses - count_to_precode(store, codebook_version)
    summary.run_id = getattr(classifier, "run_id", None)
    if getattr(classifier, "call_logger", "absent") is None:
        classifier.call_logger = CallLog(store)  # type: ignore[attr-defined]
    if progress is not None:
        progress.start(len(todo))
    if not todo:
        return summary

    if getattr(classifier, "redacts", False):
        summary.redacted = save_redactions(store, todo)

    if samples > 1:
        # A cached answer is one sample, never a majority: a samples run asks afresh.
        _precode_samples(
            store, classifier, codebook, codebook_version, todo, summary, progress, samples, route
        )
        return summary
    remaining = _serve_from_cache(
        store, classifier, codebook, codebook_version, todo, summary, progress, route
    )
    prepare = getattr(classifier, "prepare", None)
    if remaining and callable(prepare):
        # The embedded model learns from all of the project's answers (unlabelled) how far
        # each question's text predicts its answers' themes, not only from this batch. It
        # looks at a seeded sample per question: that sample is read, not the project
        # (a 500,000-response project held 1.15 GB for --limit 3000).
        prepare(prior_input(store), codebook)
    if remaining:
        _propose(
            store,
            classifier,
            codebook,
            codebook_version,
            remaining,
            summary,
            progress,
            chunk_size,
            route,
        )
    _copy_stats(classifier, summary)
    return summary


def check_run_modes(
    backend: str,
    *,
    cascade: bool = False,
    cascade_precision: float | None = None,
    cascade_rule: str = "best",
    samples: int = 1,
    batch_api: bool = False,
    dry_run: bool = False,
) -> None:
    """Refuse a combination of precode's run modes that does not go together."""
    if batch_api and backend != "openai":
        raise BackendError("--batch-api needs --backend openai")
    if cascade_precision is not None and not cascade:
        raise BackendError("--cascade-precision goes with --cascade")
    if cascade_rule != "best" and not cascade:
        raise BackendError("--cascade-rule goes with --cascade")
    if cascade and backend != "openai":
        raise BackendError("--cascade needs --backend openai (the local model is its first stage)")
    if (cascade or samples > 1) and (batch_api or dry_run):
        raise BackendError(
            "--cascade and --samples cannot be combined with --batch-api or --dry-run"
        )
    if cascade and samples > 1:
        raise BackendError("--cascade and --samples cannot be combined (yet): choose one")


def _check_samples(classifier: Classifier, samples: int) -> None:
    """Refuse a --samples value the backend cannot honour."""
    if samples < 1:
        raise BackendError(f"--samples must be at least 1, got {samples}")
    if samples > 1 and not _can_sample(classifier):
        raise BackendError(
            f"--samples needs a backend whose calls take a seed (openai); "
            f"{classifier.backend!r} gives the same answer every time"
        )


def _propose(
    store: Store,
    classifier: Classifier,
    codebook: Codebook,
    codebook_version: int,
    remaining: Sequence[Response],
    summary: PrecodeSummary,
    progress: PrecodeProgress | None,
    chunk_size: int,
    route: Mapping[str, dict[str, Any]] | None,
) -> None:
    """Ask the classifier about ``remaining`` and store each result: one by one as a
    streaming backend yields them, else a chunk of ``chunk_size`` per transaction."""
    run_id = getattr(classifier, "run_id", None)

    def row(result: ProposalResult) -> dict[str, Any]:
        return proposal_row(result, classifier, codebook_version, run_id, route)

    if hasattr(classifier, "propose_iter"):
        by_id = {response.id: response for response in remaining}

        async def stream() -> None:
            async for result in classifier.propose_iter(remaining, codebook):  # type: ignore[attr-defined]
                count_result(summary, result, by_id[result.response_id])
                store.add_proposal(**row(result))
                if progress is not None:
                    progress.advance(result, summary)

        event_loop.run(stream())
        return
    for start in range(0, len(remaining), chunk_size):
        chunk = remaining[start : start + chunk_size]
        results = classifier.propose(chunk, codebook)
        for result, response in zip(results, chunk, strict=True):
            count_result(summary, result, response)
        store.add_proposals(row(result) for result in results)
        if progress is not None:
            for result in results:
                progress.advance(result, summary)


def _copy_stats(classifier: Classifier, summary: PrecodeSummary) -> None:
    """Copy an LLM backend's call and token totals into the summary."""
    stats = getattr(classifier, "stats", None)
    if stats is not None:
        summary.calls = stats.calls
        summary.prompt_tokens = stats.prompt_tokens
        summary.completion_tokens = stats.completion_tokens
        summary.cost_usd = stats.cost_usd if stats.cost_known else None


def prior_input(store: Store) -> list[Response]:
    """The responses the local model learns its question prior from (a per-question sample)."""
    try:
        from coder.embedded.classifier import PRIOR_SAMPLE
    except ImportError:  # pragma: no cover - a build without the embedded backend
        return list(store.responses())
    return prior_sample(store, PRIOR_SAMPLE)


def _serve_from_cache(
    store: Store,
    classifier: Classifier,
    codebook: Codebook,
    codebook_version: int,
    todo: Sequence[Response],
    summary: PrecodeSummary,
    progress: PrecodeProgress | None,
    route: Mapping[str, dict[str, Any]] | None = None,
) -> list[Response]:
    """Store cached proposals for identical inputs; return the responses still to do."""
    input_hash = getattr(classifier, "input_hash", None)
    if input_hash is None:
        return list(todo)
    remaining = []
    for response in todo:
        digest = input_hash(response, codebook)
        cached = store.cached_proposal(digest)
        if cached is None or cached.proposal is None:
            remaining.append(response)
            continue
        proposal = cached.proposal.model_copy(update={"response_id": response.id})
        result = ProposalResult(
            response_id=response.id,
            proposal=proposal,
            model_version=cached.model_version,
            prompt_template_hash=cached.prompt_template_hash,
            system_prompt_hash=cached.system_prompt_hash,
            input_hash=digest,
            params={"cached_from": cached.id},
        )
        summary.cached += 1
        summary.proposed += 1
        store.add_proposal(
            **proposal_row(
                result, classifier, codebook_version, getattr(classifier, "run_id", None), route
            )
        )
        if progress is not None:
            progress.advance(result, summary)
    return remaining


def count_result(summary: PrecodeSummary, result: ProposalResult, response: Response) -> None:
    """Count one result into the summary: proposed (and flagged for injection) or failed."""
    if result.ok:
        summary.proposed += 1
        if injection_flagged(result, response):
            summary.flagged_injection += 1
    else:
        summary.failed += 1
        summary.errors.append(f"{result.response_id}: {result.error}")


def proposal_row(
    result: ProposalResult,
    classifier: ProposalSource,
    codebook_version: int,
    run_id: str | None,
    route: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``Store.add_proposal`` keywords for one result: its trace, status and route."""
    scrubbed = getattr(classifier, "scrubbed", None)
    if scrubbed is not None:
        # The LLM backends mask their API key (and key-shaped strings) in everything stored,
        # cached answers included; see coder/llm/secrets.py.
        result = scrubbed(result)
    return {
        "response_id": result.response_id,
        "backend": classifier.backend,
        "model": classifier.model,
        "proposal": result.proposal if result.ok else None,
        "codebook_version": codebook_version,
        "model_version": result.model_version,
        "prompt_template_hash": result.prompt_template_hash,
        "system_prompt_hash": result.system_prompt_hash,
        "params": {**result.params, **(route or {}).get(result.response_id, {})},
        "input_hash": result.input_hash,
        "status": "ok" if result.ok else "failed",
        "error": None if result.ok else (result.error or "no proposal returned"),
        "run_id": run_id,
    }


# --- several samples per answer (--samples N) ------------------------------------------------
def _can_sample(classifier: Classifier) -> bool:
    settings = getattr(classifier, "settings", None)
    return hasattr(classifier, "propose_iter") and hasattr(settings, "seed")


def _with_seed(classifier: Any, seed: int) -> Any:
    """A copy of an LLM classifier that sends ``seed``, logging to the same run.

    A shallow copy keeps what the backend prepared for the run (its project, shortlist,
    examples, memoised prompts); only the settings and the running totals are its own.
    """
    clone = copy.copy(classifier)
    clone.settings = dataclasses.replace(classifier.settings, seed=seed)
    clone.stats = type(classifier.stats)()
    return clone


def _precode_samples(
    store: Store,
    classifier: Any,
    codebook: Codebook,
    codebook_version: int,
    todo: Sequence[Response],
    summary: PrecodeSummary,
    progress: PrecodeProgress | None,
    samples: int,
    route: Mapping[str, dict[str, Any]] | None,
) -> None:
    """Ask ``samples`` times per answer and store each answer's majority.

    The work goes in chunks: each chunk is sampled N times (one seed per pass, at the
    classifier's concurrency) and its majorities are committed, so a killed run loses at
    most one chunk's samples (their calls stay in llm_calls). An answer whose samples did
    not all succeed is stored as failed and asked again next run.
    """
    base_seed = classifier.settings.seed if classifier.settings.seed is not None else 0
    seeds = [base_seed + index for index in range(samples)]
    clones = [_with_seed(classifier, seed) for seed in seeds]
    chunk = max(32, 8 * max(1, classifier.settings.concurrency))
    run_id = classifier.run_id

    async def sample_chunk(part: Sequence[Response]) -> list[dict[str, ProposalResult]]:
        passes = []
        for clone in clones:
            found = {}
            async for result in clone.propose_iter(part, codebook):
                found[result.response_id] = result
            passes.append(found)
        return passes

    try:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            passes = event_loop.run(sample_chunk(part))
            for response in part:
                results = [found[response.id] for found in passes]
                combined = _combine(response, results, seeds)
                count_result(summary, combined, response)
                store.add_proposal(
                    **proposal_row(combined, classifier, codebook_version, run_id, route)
                )
                if progress is not None:
                    progress.advance(combined, summary)
    finally:
        summary.calls = sum(clone.stats.calls for clone in clones)
        summary.prompt_tokens = sum(clone.stats.prompt_tokens for clone in clones)
        summary.completion_tokens = sum(clone.stats.completion_tokens for clone in clones)
        known = all(clone.stats.cost_known for clone in clones)
        summary.cost_usd = sum(clone.stats.cost_usd for clone in clones) if known else None
        # The CLI's progress bar reads the classifier's own running totals.
        classifier.stats = dataclasses.replace(
            classifier.stats,
            calls=summary.calls,
            prompt_tokens=summary.prompt_tokens,
            completion_tokens=summary.completion_tokens,
            cost_usd=sum(clone.stats.cost_usd for clone in clones),
            cost_known=known,
        )


def _combine(
    response: Response, results: Sequence[ProposalResult], seeds: Sequence[int]
) -> ProposalResult:
    """One result from an answer's samples: the majority, or a failure naming the samples."""
    first = results[0]
    params = {
        **first.params,
        "samples": {
            "n": len(results),
            "seeds": list(seeds),
            "note": "each sample's call is in llm_calls (request.seed)",
        },
    }
    params.pop("seed", None)
    failed = [(seed, r) for seed, r in zip(seeds, results, strict=True) if not r.ok]
    if failed:
        errors = "; ".join(f"seed {seed}: {r.error}" for seed, r in failed[:3])
        return dataclasses.replace(
            first,
            proposal=None,
            error=f"{len(failed)} of {len(results)} samples failed ({errors})",
            params=params,
        )
    proposals = [r.proposal for r in results if r.proposal is not None]
    combined = stability.majority(proposals)
    params["samples"]["labels"] = stability.sample_summary(proposals, seeds)
    params["samples"]["agreement"] = combined.confidence
    versions = sorted({r.model_version for r in results if r.model_version})
    return ProposalResult(
        response_id=response.id,
        proposal=combined,
        model_version=",".join(versions) or None,
        prompt_template_hash=first.prompt_template_hash,
        system_prompt_hash=first.system_prompt_hash,
        input_hash=stability.samples_input_hash([r.input_hash for r in results], seeds),
        params=params,
    )
