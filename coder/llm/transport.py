"""The HTTP transport every model call goes through (under :mod:`coder.llm.direct_chat`,
or the openai client with ``CODER_LLM_CLIENT=openai``): it guards every attempt and logs it.

Every HTTP call is logged through the classifier's ``call_logger``
(``Store.log_llm_call``): the wrapper sees every attempt, including rate-limited and
failed ones, and never the request headers, so the API key cannot reach the log. It also
guards against a hostile or broken server: one deadline for the whole attempt
(``request_timeout``, not per read), a cap on the answer's size after decompression
(``max_response_bytes``), and a 200 answer that is not a JSON object is refused with what
came back (content type, first bytes, key scrubbed) instead of a puzzling parse error.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx2

from coder.llm.aiohttp_transport import inner_transport
from coder.llm.retry import (
    MAX_ERROR_CHARS,
    AnswerDeadline,
    AnswerNotJSON,
    AnswerTooLarge,
    BadAnswer,
)
from coder.llm.secret_screen import scrub_fast
from coder.llm.secrets import scrub

if TYPE_CHECKING:
    from coder.llm.classifier import LLMClassifier


@dataclass
class CallContext:
    """Which responses the HTTP call in this task is about (set per request)."""

    response_ids: list[str]
    kind: str = "single"


CALL_CONTEXT: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
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
    #: the event loop the calls ran on (uvloop or asyncio; None: no call made)
    event_loop: str | None = None

    def add(
        self, failed: bool, prompt_tokens: int, completion_tokens: int, cost: float | None
    ) -> None:
        """Count one HTTP attempt."""
        self.calls += 1
        self.failed_calls += int(failed)
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        if cost is None:
            self.cost_known = False
        else:
            self.cost_usd += cost


_DROPPED_HEADERS = (b"content-encoding", b"content-length", b"transfer-encoding")


class LoggingTransport(httpx2.AsyncBaseTransport):
    """Times every HTTP call and records it (model, ids, tokens, cost, error; no headers)."""

    def __init__(self, classifier: LLMClassifier, concurrency: int = 4) -> None:
        # Keep a connection alive per request in flight: httpx's default of 20 would close
        # and reopen connections on every call above concurrency 20. HTTP/1.1 through
        # aiohttp (coder.llm.aiohttp_transport: a third less CPU per call than httpcore).
        self.inner = inner_transport(
            httpx2.Limits(
                max_connections=max(100, concurrency), max_keepalive_connections=concurrency
            ),
            classifier.proxy_routes(),
        )
        self.classifier = classifier

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        started = time.perf_counter()
        context = CALL_CONTEXT.get()
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
            # Parsed once: the check and the log both read it.
            payload = _json_object(body)
            if response.status_code == 200 and payload is None:
                _refuse_not_json(response, body, self.classifier.secrets())
        except Exception as error:
            record_call(self.classifier, request, response, None, body, started, context, error)
            raise
        # The body is read and decoded: hand the client a plain copy (no Content-Encoding,
        # or it would be decompressed twice).
        answer = httpx2.Response(
            response.status_code,
            headers=[(k, v) for k, v in response.headers.raw if k.lower() not in _DROPPED_HEADERS],
            content=body,
            request=request,
            extensions=response.extensions,
        )
        record_call(self.classifier, request, answer, payload, body, started, context, None)
        return answer

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _read_capped(response: httpx2.Response, limit: int) -> bytes:
    """The decoded (decompressed) body, refused once it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    encoding = response.headers.get("content-encoding")
    # An answer without Content-Encoding is its own decoding: read it raw, sparing httpx's
    # decoder chain (about 25 Python calls per answer; under 1% of the client's CPU).
    plain = encoding is None or encoding.strip().lower() == "identity"
    async for chunk in response.aiter_raw() if plain else response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            how = f" ({encoding}-compressed)" if encoding else ""
            raise AnswerTooLarge(
                f"the answer{how} passed {limit:,} bytes once decoded; refused "
                "(max_response_bytes in the config file)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object; None when it is not one."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _refuse_not_json(response: httpx2.Response, body: bytes, keys: Sequence[str]) -> None:
    """Refuse a 200 answer that is not a JSON object, saying what came back."""
    try:
        parsed = json.loads(body)
    except RecursionError:
        problem = "JSON nested too deeply to read"
    except ValueError:
        problem = "not JSON"
    else:
        problem = f"JSON {type(parsed).__name__}, not an object"
    content_type = response.headers.get("content-type") or "(none)"
    start = scrub(body[:200].decode("utf-8", "replace"), keys)
    raise AnswerNotJSON(
        f"HTTP 200 with content-type {content_type!r} and a {len(body):,}-byte body that is "
        f"{problem}; it began: {start!r}"
    )


def record_call(
    classifier: LLMClassifier,
    request: httpx2.Request,
    response: httpx2.Response | None,
    payload: dict[str, Any] | None,
    body: bytes | None,
    started: float,
    context: CallContext | None,
    error: BaseException | None,
) -> None:
    """Count one attempt in the classifier's stats and log it through its ``call_logger``.

    ``payload`` is the body parsed as a JSON object (None: not one, or no body)."""
    duration_ms = (time.perf_counter() - started) * 1000
    settings = classifier.settings
    # A refused body (too large, not JSON, past the deadline) is never read for figures.
    if payload is None or isinstance(error, BadAnswer):
        payload = {}
    usage = payload.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    completion_tokens = int(usage.get("completion_tokens") or 0)
    cost = classifier.prices.cost(
        classifier.model, prompt_tokens, completion_tokens, local=settings.is_local
    )
    status = response.status_code if response is not None else None
    failed = error is not None or (status is not None and status >= 400)
    classifier.stats.add(failed, prompt_tokens, completion_tokens, cost)
    if classifier.call_logger is None:
        return
    error_text = None
    if error is not None:
        error_text = classifier._mask_key(f"{type(error).__name__}: {error}")[:MAX_ERROR_CHARS]
    elif failed:
        error_text = classifier._mask_key(
            f"HTTP {status}: {body[:500].decode('utf-8', 'replace') if body else ''}"
        )
    # The answer's choices are logged: mask a key echoed anywhere in them.
    payload = scrub_fast(payload, classifier.secrets())
    classifier.call_logger(
        run_id=classifier.run_id,
        backend=classifier.backend,
        model=classifier.model,
        base_url=settings.resolved_base_url,
        response_ids=context.response_ids if context else [],
        # Request metadata only: never headers (the key), never the messages (PII).
        request={
            "method": request.method,
            "path": request.url.path,
            "kind": context.kind if context else None,
            "mode": settings.resolved_mode,
            "temperature": settings.temperature,
            "seed": settings.seed,
            "max_tokens": settings.max_tokens,
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
