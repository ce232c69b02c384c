"""The pre-coding pipeline, the same for both backends.

``precode`` picks the responses without a successful proposal for the current codebook
version (all of them with ``redo``), serves identical inputs from the cache, asks the
classifier for the rest and stores every result as it arrives: ok results as
``status='ok'``, errors as ``status='failed'`` rows with the error text (retried on
the next run). The LLM backend streams results and each is committed at once; the
embedded backend is synchronous and batch-oriented, so it is called in chunks and each
chunk is stored in one transaction. Either way a killed run loses at most the
requests in flight.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from coder.backends.base import Classifier, ProposalResult
from coder.injection import FLAG as INJECTION_FLAG
from coder.injection import looks_like_prompt_injection
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


_TODO_SQL = """select id from responses where id not in (
                  select response_id from proposals
                  where status = 'ok' and codebook_version = ?)"""


def responses_to_precode(
    store: Store, codebook_version: int, *, redo: bool = False, limit: int | None = None
) -> list[Response]:
    """Responses without a successful proposal for ``codebook_version`` (all with ``redo``).

    ``limit`` is applied in SQL: ``--limit 3000`` on a 500,000-response project reads 3,000.
    """
    sql = "select id from responses" if redo else _TODO_SQL
    params: list[Any] = [] if redo else [codebook_version]
    sql += " order by rowid"
    if limit is not None:
        sql += " limit ?"
        params.append(max(0, limit))
    ids = [row[0] for row in store.db.execute(sql, params)]
    by_id = {response.id: response for response in store.responses(ids=ids)} if ids else {}
    return [by_id[i] for i in ids if i in by_id]


def count_to_precode(store: Store, codebook_version: int) -> int:
    """How many responses lack a successful proposal for ``codebook_version`` (none read)."""
    row = store.db.execute(f"select count(*) from ({_TODO_SQL})", [codebook_version]).fetchone()
    return int(row[0])


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
    with store.db.atomic():
        store.db.conn.executemany(
            "update responses set redacted_text = ?, redactions = ? where id = ?", rows
        )
    return changed


def _flag(result: ProposalResult, response: Response) -> bool:
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
) -> PrecodeSummary:
    """Pre-code the project's responses with ``classifier``; see the module docstring."""
    codebook_version, codebook = store.codebook()
    summary = PrecodeSummary(total_responses=store.count_responses())
    todo = responses_to_precode(store, codebook_version, redo=redo, limit=limit)
    summary.todo = len(todo)
    if not redo:
        summary.already_done = summary.total_responses - count_to_precode(store, codebook_version)
    run_id = getattr(classifier, "run_id", None)
    summary.run_id = run_id
    if getattr(classifier, "call_logger", "absent") is None:
        classifier.call_logger = store.log_llm_call  # type: ignore[attr-defined]
    if progress is not None:
        progress.start(len(todo))
    if not todo:
        return summary

    if getattr(classifier, "redacts", False):
        summary.redacted = save_redactions(store, todo)

    remaining = _serve_from_cache(
        store, classifier, codebook, codebook_version, todo, summary, progress
    )
    prepare = getattr(classifier, "prepare", None)
    if remaining and callable(prepare):
        # The embedded model learns from all of the project's answers (unlabelled) how far
        # each question's text predicts its answers' themes, not only from this batch. It
        # looks at a seeded sample per question: that sample is read, not the project
        # (a 500,000-response project held 1.15 GB for --limit 3000).
        prepare(_prepare_input(store), codebook)

    def store_one(result: ProposalResult, response: Response) -> None:
        _record(summary, result, response)
        store.add_proposal(**_row(result, classifier, codebook_version, run_id))
        if progress is not None:
            progress.advance(result, summary)

    if remaining and hasattr(classifier, "propose_iter"):
        by_id = {response.id: response for response in remaining}

        async def stream() -> None:
            async for result in classifier.propose_iter(remaining, codebook):  # type: ignore[attr-defined]
                store_one(result, by_id[result.response_id])

        asyncio.run(stream())
    elif remaining:
        for start in range(0, len(remaining), chunk_size):
            chunk = remaining[start : start + chunk_size]
            results = classifier.propose(chunk, codebook)
            for result, response in zip(results, chunk, strict=True):
                _record(summary, result, response)
            store.add_proposals(
                _row(result, classifier, codebook_version, run_id) for result in results
            )
            if progress is not None:
                for result in results:
                    progress.advance(result, summary)

    stats = getattr(classifier, "stats", None)
    if stats is not None:
        summary.calls = stats.calls
        summary.prompt_tokens = stats.prompt_tokens
        summary.completion_tokens = stats.completion_tokens
        summary.cost_usd = stats.cost_usd if stats.cost_known else None
    return summary


def _prepare_input(store: Store) -> list[Response]:
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
            **_row(result, classifier, codebook_version, getattr(classifier, "run_id", None))
        )
        if progress is not None:
            progress.advance(result, summary)
    return remaining


def _record(summary: PrecodeSummary, result: ProposalResult, response: Response) -> None:
    if result.ok:
        summary.proposed += 1
        if _flag(result, response):
            summary.flagged_injection += 1
    else:
        summary.failed += 1
        summary.errors.append(f"{result.response_id}: {result.error}")


def _row(
    result: ProposalResult, classifier: Classifier, codebook_version: int, run_id: str | None
) -> dict[str, Any]:
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
        "params": result.params,
        "input_hash": result.input_hash,
        "status": "ok" if result.ok else "failed",
        "error": None if result.ok else (result.error or "no proposal returned"),
        "run_id": run_id,
    }
