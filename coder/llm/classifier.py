"""The LLM backend: instructor over any OpenAI-compatible endpoint.

``LLMClassifier.propose_iter`` is the working path: an async generator that yields a
:class:`ProposalResult` per response as soon as it is known, so the caller can commit
each one at once (nothing is lost if the process dies). ``propose`` is the synchronous
form the :class:`coder.backends.base.Classifier` protocol asks for.

Every HTTP call is logged through ``call_logger`` (``Store.log_llm_call``) by a thin
transport wrapper: it sees every attempt, including rate-limited and failed ones,
and never the request headers, so the API key cannot reach the log. The same wrapper
guards against a hostile or broken server: one deadline for the whole attempt
(``request_timeout``, not per read), a cap on the answer's size after decompression
(``max_response_bytes``), and a 200 answer that is not a JSON object is refused with what
came back (content type, first bytes, key scrubbed) instead of a puzzling parse error.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import hashlib
import json
import os
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2
import instructor
import openai
from pydantic import BaseModel

from coder.backends.base import ProposalResult
from coder.llm import prompts
from coder.llm.config import LLMSettings, build_settings
from coder.llm.pricing import PriceTable, estimate_tokens
from coder.llm.response_model import (
    VALIDATION_CONTEXT,
    build_batch_model,
    build_item_model,
    to_proposal,
)
from coder.llm.retry import (
    AnswerDeadline,
    AnswerNotJSON,
    AnswerTooLarge,
    BadAnswer,
    transport_retrying,
    validation_retrying,
)
from coder.llm.secrets import scrub, scrub_value
from coder.redact import redact
from schemas import Codebook, Response

MODES = {
    "tools": instructor.Mode.TOOLS,
    "json": instructor.Mode.JSON,
    "json_schema": instructor.Mode.JSON_SCHEMA,
    "md_json": instructor.Mode.MD_JSON,
}
#: a guess of the answer length per response, for the pre-flight estimate
COMPLETION_TOKENS_PER_RESPONSE = 180
MAX_ERROR_CHARS = 2000

CallLogger = Callable[..., Any]


@dataclass
class CallContext:
    """Which responses the HTTP call in this task is about (set per request)."""

    response_ids: list[str]
    kind: str = "single"


_CALL_CONTEXT: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "coder_llm_call_context", default=None
)


@dataclass
class CallStats:
    """Running totals for the progress bar and the summary."""

    calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True


@dataclass
class Estimate:
    """A pre-flight estimate: what a run would send, before any money is spent."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    model: str
    base_url: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Planned:
    """One request to make: responses that share a system prompt."""

    question_id: str | None
    responses: list[Response]


class _LoggingTransport(httpx2.AsyncBaseTransport):
    """Times every HTTP call and records it (model, ids, tokens, cost, error; no headers)."""

    def __init__(self, classifier: LLMClassifier, concurrency: int = 4) -> None:
        # Keep a connection alive per request in flight: httpx's default of 20 would close
        # and reopen connections on every call above concurrency 20.
        self.inner = httpx2.AsyncHTTPTransport(
            limits=httpx2.Limits(
                max_connections=max(100, concurrency), max_keepalive_connections=concurrency
            )
        )
        self.classifier = classifier

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        started = time.perf_counter()
        context = _CALL_CONTEXT.get()
        settings = self.classifier.settings
        response: httpx2.Response | None = None
        body: bytes | None = None
        try:
            try:
                # One deadline for the whole attempt: httpx's timeouts are per read, so a
                # server sending a byte a second never trips them.
                async with asyncio.timeout(settings.request_timeout):
                    response = await self.inner.handle_async_request(request)
                    body = await _read_capped(response, settings.max_response_bytes)
            except TimeoutError as error:
                raise AnswerDeadline(
                    f"no complete answer within {settings.request_timeout:g} s "
                    "(--request-timeout covers the whole answer)"
                ) from error
            finally:
                if response is not None:
                    await response.aclose()
            assert response is not None and body is not None
            if response.status_code == 200:
                _check_json_object(response, body, self.classifier.secrets())
        except Exception as error:
            self.classifier._record_call(request, response, body, started, context, error)
            raise
        # The body is read and decoded: hand the client a plain copy (no Content-Encoding,
        # or it would be decompressed twice).
        answer = httpx2.Response(
            response.status_code,
            headers=[
                (name, value)
                for name, value in response.headers.raw
                if name.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
            ],
            content=body,
            request=request,
            extensions=response.extensions,
        )
        self.classifier._record_call(request, answer, body, started, context, None)
        return answer

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _read_capped(response: httpx2.Response, limit: int) -> bytes:
    """The decoded (decompressed) body, refused once it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            encoding = response.headers.get("content-encoding")
            how = f" ({encoding}-compressed)" if encoding else ""
            raise AnswerTooLarge(
                f"the answer{how} passed {limit:,} bytes once decoded; refused "
                "(max_response_bytes in the config file)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _check_json_object(response: httpx2.Response, body: bytes, keys: Sequence[str]) -> None:
    """Refuse a 200 answer that is not a JSON object, saying what came back."""
    try:
        parsed = json.loads(body)
    except RecursionError:
        problem = "JSON nested too deeply to read"
    except ValueError:
        problem = "not JSON"
    else:
        if isinstance(parsed, dict):
            return
        problem = f"JSON {type(parsed).__name__}, not an object"
    content_type = response.headers.get("content-type") or "(none)"
    start = scrub(body[:200].decode("utf-8", "replace"), keys)
    raise AnswerNotJSON(
        f"HTTP 200 with content-type {content_type!r} and a {len(body):,}-byte body that is "
        f"{problem}; it began: {start!r}"
    )


class LLMClassifier:
    """Pre-codes responses through an OpenAI-compatible endpoint with instructor."""

    backend = "openai"

    def __init__(
        self,
        model: str | None = None,
        *,
        settings: LLMSettings | None = None,
        config_file: str | None = None,
        call_logger: CallLogger | None = None,
        run_id: str | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings or build_settings(config_file, model=model, **overrides)
        if settings is not None and model is not None:
            self.settings.model = model
        self.model = self.settings.model
        self.prices = PriceTable.load(self.settings.prices_file)
        self.call_logger = call_logger
        self.run_id = run_id or uuid.uuid4().hex
        self.stats = CallStats()
        # Per-codebook values (system prompts, response models, hashes) are computed once
        # per run, not once per call: rebuilding a pydantic model and its JSON schema for
        # every request cost ~10 ms of CPU each and capped throughput at high concurrency.
        self._memo: dict[tuple[Any, ...], tuple[Codebook, Any]] = {}
        self._api_key: str | None = None

    def secrets(self) -> tuple[str, ...]:
        """The key(s) this classifier sends, to be scrubbed from whatever is stored."""
        key = self._api_key or os.environ.get(self.settings.api_key_env)
        return (key,) if key else ()

    def _mask_key(self, text: str) -> str:
        # A proxy or server may quote the key back in an error ("invalid credentials:
        # Bearer sk-..."); errors are stored and printed, the key never is.
        return scrub(text, self.secrets())

    def scrubbed(self, result: ProposalResult) -> ProposalResult:
        """``result`` with the key masked everywhere (a server may echo it in a good answer,
        e.g. in the model name or the rationale)."""
        keys = self.secrets()
        return dataclasses.replace(
            result,
            proposal=scrub_value(result.proposal, keys),
            model_version=scrub(result.model_version, keys) if result.model_version else None,
            error=scrub(result.error, keys) if result.error else None,
            params=scrub_value(result.params, keys),
        )

    def _memoised(
        self, codebook: Codebook, key: tuple[Any, ...], compute: Callable[[], Any]
    ) -> Any:
        # Keyed by identity; the entry holds the codebook so its id cannot be reused.
        full_key = (id(codebook), *key)
        hit = self._memo.get(full_key)
        if hit is None or hit[0] is not codebook:
            hit = (codebook, compute())
            self._memo[full_key] = hit
        return hit[1]

    def _system_prompt(self, codebook: Codebook, question_id: str | None) -> prompts.SystemPrompt:
        return self._memoised(  # type: ignore[no-any-return]
            codebook,
            ("system", question_id),
            lambda: prompts.render_system_prompt(codebook, question_id),
        )

    def _item_model(self, codebook: Codebook, question_id: str | None) -> type[BaseModel]:
        return self._memoised(  # type: ignore[no-any-return]
            codebook,
            ("item_model", question_id),
            lambda: _as_response_schema(build_item_model(codebook, question_id)),
        )

    # --- what leaves the machine ---------------------------------------------------
    @property
    def redacts(self) -> bool:
        """True when PII is redacted before sending (on, unless the endpoint is local)."""
        return self.settings.redact and not self.settings.is_local

    def outgoing_text(self, response: Response) -> str:
        """The text sent to the endpoint: redacted unless the endpoint is local."""
        return redact(response.text).text if self.redacts else response.text

    def input_hash(self, response: Response, codebook: Codebook) -> str:
        """Cache key: backend, model, params, prompt version, codebook and text."""
        system = self._system_prompt(codebook, response.question)
        key = {
            "backend": self.backend,
            "model": self.model,
            "params": self.settings.params(),
            "template_hash": system.template_hash,
            "system_prompt_hash": system.hash,
            "codebook_hash": self._memoised(codebook, ("hash",), codebook.content_hash),
            "question": response.question,
            "text": self.outgoing_text(response),
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()

    # --- planning and estimates ------------------------------------------------------
    def plan(self, responses: Sequence[Response]) -> list[_Planned]:
        """Group responses into requests: by question, token-aware, ``batch_size`` at most."""
        if self.settings.batch_size <= 1:
            return [_Planned(r.question, [r]) for r in responses]
        by_question: dict[str | None, list[Response]] = {}
        for response in responses:
            by_question.setdefault(response.question, []).append(response)
        planned: list[_Planned] = []
        for question_id, group in by_question.items():
            current: list[Response] = []
            tokens = 0
            for response in group:
                size = estimate_tokens(response.text) + 20
                if current and (
                    len(current) >= self.settings.batch_size
                    or tokens + size > self.settings.batch_max_tokens
                ):
                    planned.append(_Planned(question_id, current))
                    current, tokens = [], 0
                current.append(response)
                tokens += size
            if current:
                planned.append(_Planned(question_id, current))
        return planned

    def estimate(self, responses: Sequence[Response], codebook: Codebook) -> Estimate:
        """Calls, tokens and cost a run over ``responses`` would take (no network)."""
        prompt_tokens = completion_tokens = 0
        schema_tokens: dict[str | None, int] = {}
        planned = self.plan(responses)
        for request in planned:
            if request.question_id not in schema_tokens:
                model = self._item_model(codebook, request.question_id)
                schema_tokens[request.question_id] = estimate_tokens(
                    json.dumps(model.model_json_schema())
                )
            messages = self._messages(codebook, request)
            prompt_tokens += sum(estimate_tokens(m["content"]) for m in messages)
            prompt_tokens += schema_tokens[request.question_id]
            completion_tokens += COMPLETION_TOKENS_PER_RESPONSE * len(request.responses)
        cost = self.prices.cost(
            self.model, prompt_tokens, completion_tokens, local=self.settings.is_local
        )
        return Estimate(
            calls=len(planned),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            model=self.model,
            base_url=self.settings.resolved_base_url,
        )

    # --- the protocol ----------------------------------------------------------------
    def propose(self, responses: Sequence[Response], codebook: Codebook) -> list[ProposalResult]:
        """Propose labels for ``responses`` (one result per response, same order)."""

        async def collect() -> list[ProposalResult]:
            return [result async for result in self.propose_iter(responses, codebook)]

        results = {result.response_id: result for result in asyncio.run(collect())}
        return [results[response.id] for response in responses]

    async def propose_iter(
        self, responses: Sequence[Response], codebook: Codebook
    ) -> AsyncIterator[ProposalResult]:
        """Yield one result per response, in the order they complete."""
        if not responses:
            return
        client = self._client()
        semaphore = asyncio.Semaphore(max(1, self.settings.concurrency))
        try:
            tasks = [
                asyncio.create_task(self._run_planned(client, semaphore, codebook, request))
                for request in self.plan(responses)
            ]
            try:
                for finished in asyncio.as_completed(tasks):
                    for result in await finished:
                        yield result
            finally:
                for task in tasks:
                    task.cancel()
        finally:
            await client.client.close()

    # --- internals ---------------------------------------------------------------------
    def _client(self) -> Any:
        _memoise_instructor_async_validator_check()
        api_key = self.settings.api_key()
        self._api_key = api_key
        concurrency = max(1, self.settings.concurrency)
        http_client = httpx2.AsyncClient(
            transport=_LoggingTransport(self, concurrency),
            timeout=httpx2.Timeout(self.settings.request_timeout, connect=10.0),
        )
        raw = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=self.settings.resolved_base_url,
            # Our tenacity policy is the only retry layer (see coder.llm.retry).
            max_retries=0,
            timeout=self.settings.request_timeout,
            http_client=http_client,
        )
        return instructor.from_openai(raw, mode=MODES[self.settings.resolved_mode])

    def _messages(self, codebook: Codebook, request: _Planned) -> list[dict[str, str]]:
        system = self._system_prompt(codebook, request.question_id)
        if len(request.responses) == 1:
            response = request.responses[0]
            user = prompts.render_user_prompt(response, self.outgoing_text(response))
        else:
            user = prompts.render_batch_prompt(
                codebook,
                request.question_id,
                [{"id": r.id, "text": self.outgoing_text(r)} for r in request.responses],
            )
        return [{"role": "system", "content": system.text}, {"role": "user", "content": user}]

    def _provenance(self, response: Response, codebook: Codebook) -> dict[str, Any]:
        system = self._system_prompt(codebook, response.question)
        return {
            "prompt_template_hash": system.template_hash,
            "system_prompt_hash": system.hash,
            "input_hash": self.input_hash(response, codebook),
            "params": {"model": self.model, **self.settings.params()},
        }

    async def _run_planned(
        self, client: Any, semaphore: asyncio.Semaphore, codebook: Codebook, request: _Planned
    ) -> list[ProposalResult]:
        if len(request.responses) == 1:
            return [await self._run_single(client, semaphore, codebook, request.responses[0])]
        results: dict[str, ProposalResult] = {}
        try:
            items, model_version = await self._call(
                client, semaphore, codebook, request, batch=True
            )
            for item in items:
                response_id = str(item.response_id)  # type: ignore[attr-defined]
                if response_id in results:  # a duplicated id keeps its first answer
                    continue
                response = next(r for r in request.responses if r.id == response_id)
                results[response_id] = self.scrubbed(
                    ProposalResult(
                        response_id=response_id,
                        proposal=to_proposal(item, response_id, response.question),
                        model_version=model_version,
                        **self._provenance(response, codebook),
                    )
                )
        except Exception:  # noqa: BLE001 - every item is retried on its own below
            results = {}
        # Ids the batch did not return (or a failed batch) get single-item requests.
        missing = [r for r in request.responses if r.id not in results]
        singles = await asyncio.gather(
            *(self._run_single(client, semaphore, codebook, r) for r in missing)
        )
        for result in singles:
            results[result.response_id] = result
        return [results[r.id] for r in request.responses]

    async def _run_single(
        self, client: Any, semaphore: asyncio.Semaphore, codebook: Codebook, response: Response
    ) -> ProposalResult:
        try:
            items, model_version = await self._call(
                client, semaphore, codebook, _Planned(response.question, [response]), batch=False
            )
            return self.scrubbed(
                ProposalResult(
                    response_id=response.id,
                    proposal=to_proposal(items[0], response.id, response.question),
                    model_version=model_version,
                    **self._provenance(response, codebook),
                )
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - stored as a failed proposal, retried next run
            return ProposalResult(
                response_id=response.id,
                proposal=None,
                error=self._mask_key(describe_error(error)),
                **self._provenance(response, codebook),
            )

    async def _call(
        self,
        client: Any,
        semaphore: asyncio.Semaphore,
        codebook: Codebook,
        request: _Planned,
        *,
        batch: bool,
    ) -> tuple[list[BaseModel], str | None]:
        ids = [r.id for r in request.responses]
        # Every request is a task from the start; it prepares its prompt only once a slot
        # is free. Preparing first delayed the first call of a 2,000-response run by
        # ~0.4 s (all prompts rendered before any was sent) and held them all in memory.
        async with semaphore:
            model: type[BaseModel] = (
                build_batch_model(codebook, request.question_id, ids)
                if batch
                else self._item_model(codebook, request.question_id)
            )
            # The validators read this context from a contextvar, not instructor's
            # context= (which would render the text as a Jinja template; see response_model).
            context = {
                "codebook": codebook,
                "texts": {r.id: self.outgoing_text(r) for r in request.responses},
                "question": request.question_id,
                "response_id": None if batch else ids[0],
            }
            messages = self._messages(codebook, request)
            kwargs: dict[str, Any] = {
                "model": self.model,
                "temperature": self.settings.temperature,
            }
            if self.settings.max_tokens:
                kwargs["max_tokens"] = self.settings.max_tokens * (len(ids) if batch else 1)
            token = _CALL_CONTEXT.set(CallContext(ids, "batch" if batch else "single"))
            validation_token = VALIDATION_CONTEXT.set(context)
            try:
                async for attempt in transport_retrying(self.settings):
                    with attempt:
                        parsed, completion = await client.create_with_completion(
                            messages=messages,
                            response_model=model,
                            max_retries=validation_retrying(self.settings),
                            **kwargs,
                        )
            finally:
                VALIDATION_CONTEXT.reset(validation_token)
                _CALL_CONTEXT.reset(token)
        model_version = getattr(completion, "model", None)
        items = list(parsed.items) if batch else [parsed]  # type: ignore[attr-defined]
        return items, model_version

    def _record_call(
        self,
        request: httpx2.Request,
        response: httpx2.Response | None,
        body: bytes | None,
        started: float,
        context: CallContext | None,
        error: BaseException | None,
    ) -> None:
        duration_ms = (time.perf_counter() - started) * 1000
        payload: dict[str, Any] = {}
        if body and not isinstance(error, BadAnswer):
            try:
                payload = json.loads(body)
            except (ValueError, RecursionError):
                payload = {}
            if not isinstance(payload, dict):
                payload = {}
        usage = payload.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        cost = self.prices.cost(
            self.model, prompt_tokens, completion_tokens, local=self.settings.is_local
        )
        status = response.status_code if response is not None else None
        failed = error is not None or (status is not None and status >= 400)
        self.stats.calls += 1
        self.stats.failed_calls += int(failed)
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        if cost is None:
            self.stats.cost_known = False
        else:
            self.stats.cost_usd += cost
        if self.call_logger is None:
            return
        error_text = None
        if error is not None:
            error_text = self._mask_key(f"{type(error).__name__}: {error}")[:MAX_ERROR_CHARS]
        elif failed:
            error_text = self._mask_key(
                f"HTTP {status}: {body[:500].decode('utf-8', 'replace') if body else ''}"
            )
        # The answer's choices are logged: mask a key echoed anywhere in them.
        payload = scrub_value(payload, self.secrets())
        self.call_logger(
            run_id=self.run_id,
            backend=self.backend,
            model=self.model,
            base_url=self.settings.resolved_base_url,
            response_ids=context.response_ids if context else [],
            # Request metadata only: never headers (the key), never the messages (PII).
            request={
                "method": request.method,
                "path": request.url.path,
                "kind": context.kind if context else None,
                "mode": self.settings.resolved_mode,
                "temperature": self.settings.temperature,
                "max_tokens": self.settings.max_tokens,
            },
            response={
                "status": status,
                "id": payload.get("id"),
                "model": payload.get("model"),
                "choices": payload.get("choices"),
            }
            if response is not None
            else None,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            duration_ms=round(duration_ms, 1),
            cost_usd=cost,
            error=error_text,
        )


def _memoise_instructor_async_validator_check() -> None:
    # instructor walks the response model's whole type graph (every member of every class
    # in its MRO) about seven times per request to refuse async validators: ~1.5 ms of CPU
    # a call, the largest cost left at high concurrency. A class that passed once passes
    # again, so remember the classes that passed (failures are not cached).
    try:
        from instructor.v2.validation import async_validators
    except ImportError:  # pragma: no cover - another instructor layout: leave it alone
        return
    original = async_validators.reject_async_validators
    if getattr(original, "_coder_memoised", False):
        return
    passed: weakref.WeakSet[type] = weakref.WeakSet()

    def reject_async_validators(response_model: Any) -> None:
        if isinstance(response_model, type) and response_model in passed:
            return
        original(response_model)
        if isinstance(response_model, type):
            passed.add(response_model)

    reject_async_validators._coder_memoised = True  # type: ignore[attr-defined]
    async_validators.reject_async_validators = reject_async_validators


def _as_response_schema(model: type[BaseModel]) -> type[BaseModel]:
    # instructor wraps a plain model in a new ResponseSchema subclass on every call, which
    # defeats its own schema cache (a fresh JSON schema per request). Wrapping once, here,
    # lets a memoised model reuse it.
    try:
        from instructor.v2.core.function_calls import ResponseSchema, response_schema
    except ImportError:  # pragma: no cover - another instructor layout: let it wrap
        return model
    if issubclass(model, ResponseSchema):
        return model
    return response_schema(model)


def describe_error(error: BaseException) -> str:
    """A one-paragraph error for the failed proposal row (attempts and last cause)."""
    attempts = getattr(error, "n_attempts", None)
    cause = error.__cause__ or error
    # The openai client says "Connection error." for anything its transport raised; the
    # transport's own reason (a deadline, a size cap, an HTML page) is the useful part.
    seen: set[int] = set()
    item: BaseException | None = error
    while item is not None and id(item) not in seen:
        seen.add(id(item))
        if isinstance(item, BadAnswer):
            cause = item
            break
        item = item.__cause__ or item.__context__
    text = f"{type(cause).__name__}: {cause}"
    if attempts:
        text = f"after {attempts} attempt(s): {text}"
    return text[:MAX_ERROR_CHARS]
