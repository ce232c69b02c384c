"""The OpenAI Batch API path: half price, results within 24 hours.

``submit_batch`` writes one JSONL request per response (the same prompts, schema and
provenance as the live path), uploads it (``files.create``), creates the batch
(``batches.create``) and records it in ``llm_batches``; ``wait_and_ingest`` polls until
the batch ends, downloads the output and stores a proposal (or a failed row) per
response. A run that dies while waiting resumes from the stored batch id
(``coder precode --batch-api --resume BATCH_ID``, or automatically: the newest batch
not yet ingested). Answers that fail validation are stored as failed rows; the next
ordinary run retries them live.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx2
import openai
from pydantic import ValidationError

from coder import batch_queries
from coder.backends.base import ProposalResult
from coder.errors import BackendError, CoderError
from coder.llm.classifier import LLMClassifier
from coder.llm.context_window import ContextTooSmall
from coder.llm.planning import PlannedRequest
from coder.llm.proxy import SyncProxyRouter
from coder.llm.response_model import build_item_model, to_proposal
from coder.precode import (
    PrecodeSummary,
    injection_flagged,
    proposal_row,
    responses_to_precode,
    save_redactions,
)
from coder.store import Store, now
from schemas import Codebook, Response

ENDPOINT: Literal["/v1/chat/completions"] = "/v1/chat/completions"
FINAL_STATUSES = {"completed", "failed", "expired", "cancelled"}


@dataclass
class BatchJob:
    """A submitted batch, as recorded in ``llm_batches``."""

    batch_id: str
    input_file_id: str
    status: str
    requests: dict[str, dict[str, Any]]


def _sync_client(classifier: LLMClassifier) -> openai.OpenAI:
    settings = classifier.settings
    return openai.OpenAI(
        api_key=settings.api_key(),
        base_url=settings.resolved_base_url,
        max_retries=3,
        timeout=settings.request_timeout,
        # The same proxies as the classifier's calls (--proxy, NO_PROXY).
        http_client=httpx2.Client(
            transport=SyncProxyRouter(classifier.proxy_routes()), timeout=settings.request_timeout
        ),
    )


def request_body(
    classifier: LLMClassifier, codebook: Codebook, response: Response, prompt: Any = None
) -> dict[str, Any]:
    """The chat completion body for one response, in the classifier's mode (tools or schema).

    The prompt is the one a live call would send (shortlist, examples, context fit
    included), so a batch proposal is traced to exactly what the model saw.
    """
    if prompt is None:
        prompt = classifier._prompt(
            codebook, PlannedRequest(response.question, [response]), batch=False
        )
    model = prompt.model
    messages = prompt.messages()
    schema = model.model_json_schema()
    body: dict[str, Any] = {
        "model": classifier.model,
        "messages": messages,
        "temperature": classifier.settings.temperature,
    }
    if classifier.settings.max_tokens:
        body["max_tokens"] = classifier.settings.max_tokens
    if classifier.settings.resolved_mode == "json_schema":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": model.__name__, "schema": schema},
        }
    else:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": model.__name__,
                    "description": model.__doc__ or "",
                    "parameters": schema,
                },
            }
        ]
        body["tool_choice"] = {"type": "function", "function": {"name": model.__name__}}
    return body


def submit_batch(
    store: Store,
    classifier: LLMClassifier,
    codebook: Codebook,
    codebook_version: int,
    responses: Sequence[Response],
) -> BatchJob:
    """Write the JSONL, upload it, create the batch and record it (before any waiting)."""
    lines = []
    requests: dict[str, dict[str, Any]] = {}
    classifier._rank(responses, codebook)  # one batch for the shortlist's ranking model
    for index, response in enumerate(responses):
        custom_id = f"r{index}"
        try:
            prompt = classifier._prompt(
                codebook, PlannedRequest(response.question, [response]), batch=False
            )
        except ContextTooSmall as error:
            raise CoderError(f"response {response.id}: {error}") from error
        requests[custom_id] = {
            "response_id": response.id,
            "prompt_template_hash": prompt.system.template_hash,
            "system_prompt_hash": prompt.system.hash,
            "input_hash": classifier.input_hash(response, codebook),
            # The answer is read with the same response model (its Literal follows this).
            "theme_ids": list(prompt.theme_ids) if prompt.theme_ids is not None else None,
        }
        lines.append(
            json.dumps(
                {
                    "custom_id": custom_id,
                    "method": "POST",
                    "url": ENDPOINT,
                    "body": request_body(classifier, codebook, response, prompt),
                },
                ensure_ascii=False,
            )
        )
    data = ("\n".join(lines) + "\n").encode("utf-8")
    client = _sync_client(classifier)
    uploaded = client.files.create(file=("precode.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint=ENDPOINT,
        completion_window="24h",
        metadata={"coder_run_id": classifier.run_id},
    )
    batch_queries.record_batch(
        store,
        {
            "batch_id": batch.id,
            "input_file_id": uploaded.id,
            "output_file_id": None,
            "run_id": classifier.run_id,
            "model": classifier.model,
            "base_url": classifier.settings.resolved_base_url,
            "codebook_version": codebook_version,
            "response_ids": json.dumps([r.id for r in responses]),
            "requests": json.dumps(requests),
            "status": batch.status,
            "created_at": now(),
            "ingested_at": None,
        },
    )
    if classifier.call_logger is not None:
        classifier.call_logger(
            run_id=classifier.run_id,
            backend=classifier.backend,
            model=classifier.model,
            base_url=classifier.settings.resolved_base_url,
            response_ids=[r.id for r in responses],
            request={"path": "/v1/batches", "input_file_id": uploaded.id, "n_requests": len(lines)},
            response={"batch_id": batch.id, "status": batch.status},
        )
    return BatchJob(batch.id, uploaded.id, batch.status, requests)


def start_batch(
    store: Store,
    classifier: LLMClassifier,
    *,
    redo: bool = False,
    limit: int | None = None,
) -> tuple[BatchJob | None, int]:
    """Submit a batch of the responses ``precode`` would pick, redacted text stored first:
    the job (None when there is nothing to pre-code) and how many requests it holds."""
    classifier.call_logger = store.log_llm_call
    version, codebook = store.codebook()
    todo = responses_to_precode(store, version, redo=redo, limit=limit)
    if not todo:
        return None, 0
    if classifier.redacts:
        save_redactions(store, todo)
    return submit_batch(store, classifier, codebook, version, todo), len(todo)


def pending_batch_id(store: Store) -> str | None:
    """The newest batch not yet ingested, to resume automatically."""
    return batch_queries.pending_batch_id(store)


def wait_and_ingest(
    store: Store,
    classifier: LLMClassifier,
    batch_id: str,
    *,
    poll_interval: float | None = None,
    timeout: float | None = None,
    on_poll: Callable[[str, Any], None] | None = None,
) -> PrecodeSummary:
    """Poll the batch until it ends, then store a proposal (or failure) per response."""
    record = batch_queries.batch_record(store, batch_id)
    if record is None:
        raise BackendError(f"batch {batch_id} is not recorded in this project")
    summary = PrecodeSummary(run_id=record["run_id"])
    if record["ingested_at"]:
        return summary
    requests: dict[str, dict[str, Any]] = json.loads(record["requests"])
    codebook_version = int(record["codebook_version"])
    _, codebook = store.codebook(codebook_version)
    client = _sync_client(classifier)
    interval = classifier.settings.batch_poll_interval if poll_interval is None else poll_interval
    started = time.monotonic()
    while True:
        batch = client.batches.retrieve(batch_id)
        batch_queries.set_batch_status(store, batch_id, batch.status)
        if on_poll is not None:
            on_poll(batch.status, batch.request_counts)
        if batch.status in FINAL_STATUSES:
            break
        if timeout is not None and time.monotonic() - started > timeout:
            raise BackendError(
                f"batch {batch_id} still {batch.status}; resume later with "
                f"'coder precode --batch-api --resume {batch_id}'"
            )
        time.sleep(interval)

    answers: dict[str, dict[str, Any]] = {}
    for file_id in (batch.output_file_id, batch.error_file_id):
        if not file_id:
            continue
        content = client.files.content(file_id).read().decode("utf-8")
        for line in content.splitlines():
            if line.strip():
                entry = json.loads(line)
                answers[entry["custom_id"]] = entry

    responses = {
        r.id: r for r in store.responses(ids=[info["response_id"] for info in requests.values()])
    }
    with store.db.atomic():
        for custom_id, info in requests.items():
            response = responses.get(info["response_id"])
            if response is None:
                continue
            # A batch answer may echo the key (in an error body, the model name or the
            # rationale).
            result = classifier.scrubbed(
                _read_answer(classifier, codebook, response, info, answers.get(custom_id))
            )
            if result.ok:
                summary.proposed += 1
                summary.flagged_injection += int(injection_flagged(result, response))
            else:
                summary.failed += 1
                summary.errors.append(f"{response.id}: {result.error}")
            store.add_proposal(
                **proposal_row(result, classifier, codebook_version, record["run_id"])
            )
        batch_queries.mark_ingested(store, batch_id, now(), batch.output_file_id)
    summary.todo = len(requests)
    return summary


def _read_answer(
    classifier: LLMClassifier,
    codebook: Codebook,
    response: Response,
    info: dict[str, Any],
    answer: dict[str, Any] | None,
) -> ProposalResult:
    provenance = {
        "prompt_template_hash": info["prompt_template_hash"],
        "system_prompt_hash": info["system_prompt_hash"],
        "input_hash": info["input_hash"],
        "params": {"model": classifier.model, "batch_api": True, **classifier.settings.params()},
    }

    def failed(error: str) -> ProposalResult:
        return ProposalResult(response_id=response.id, proposal=None, error=error, **provenance)

    if answer is None:
        return failed("batch API: no answer for this request")
    if answer.get("error"):
        return failed(f"batch API error: {json.dumps(answer['error'])[:500]}")
    body = (answer.get("response") or {}).get("body") or {}
    status = (answer.get("response") or {}).get("status_code")
    if status != 200:
        return failed(f"batch API: HTTP {status}: {json.dumps(body)[:500]}")
    try:
        message = body["choices"][0]["message"]
        if message.get("tool_calls"):
            arguments = message["tool_calls"][0]["function"]["arguments"]
        else:
            arguments = message.get("content") or ""
        theme_ids = info.get("theme_ids")  # absent in batches submitted before shortlists
        model = build_item_model(
            codebook, response.question, None, tuple(theme_ids) if theme_ids is not None else None
        )
        item = model.model_validate_json(
            arguments,
            context={
                "codebook": codebook,
                "texts": {response.id: classifier.outgoing_text(response)},
                "question": response.question,
                "response_id": response.id,
            },
        )
    except (KeyError, IndexError, TypeError, ValidationError, ValueError) as error:
        return failed(f"batch API answer rejected: {type(error).__name__}: {error}"[:2000])
    usage = body.get("usage") or {}
    classifier.stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
    classifier.stats.completion_tokens += int(usage.get("completion_tokens") or 0)
    return ProposalResult(
        response_id=response.id,
        proposal=to_proposal(item, response.id, response.question),
        model_version=body.get("model"),
        **provenance,
    )
