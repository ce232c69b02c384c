"""tenacity policies: which failures are retried, how long to wait, when to give up.

Two layers, each explicit:

* transport: 429, 5xx, timeouts, connection errors, truncated or non-JSON bodies are
  retried with exponential backoff and jitter, honouring ``Retry-After``, bounded in
  attempts and in total time (:func:`transport_retrying`);
* validation: an answer that fails the response model's validators is re-asked through
  instructor with the error in the messages (:func:`validation_retrying`, passed as
  instructor's ``max_retries``).

The openai client's own retries are switched off (``max_retries=0``) so these are the
only ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx2
import openai
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from coder.llm.config import LLMSettings

#: the longest error text stored for a failed proposal or call
MAX_ERROR_CHARS = 2000
TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}


class BadAnswer(Exception):
    """An HTTP answer coder refuses before the openai client sees it (raised by the
    transport, so the attempt is logged in ``llm_calls`` with this message).

    The openai client reports any transport error as "Connection error."; the message
    of this exception, found in the cause chain, is what the user sees instead
    (:func:`describe_error`).
    """

    #: whether trying again unchanged may help
    transient = True


class AnswerDeadline(BadAnswer):
    """The whole answer did not arrive within ``request_timeout`` (a server that drips)."""


class AnswerTooLarge(BadAnswer):
    """The answer, decompressed, passed ``max_response_bytes`` (a gzip bomb, a runaway body)."""

    # A server that sent 50 MB once will do it again: no retry.
    transient = False


class AnswerNotJSON(BadAnswer):
    """A 200 answer that is not a JSON object (an HTML page from a proxy, a truncated or
    absurdly nested body)."""


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and its causes (instructor wraps the API error it gave up on)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_transient(error: BaseException) -> bool:
    """True for failures worth trying again unchanged: rate limits, server errors, network."""
    # Checked first: the openai client wraps it in a (transient) APIConnectionError.
    bad = next((item for item in _chain(error) if isinstance(item, BadAnswer)), None)
    if bad is not None:
        return bad.transient
    for item in _chain(error):
        if isinstance(item, openai.APIStatusError):
            return item.status_code in TRANSIENT_STATUS
        if isinstance(item, openai.APIConnectionError | openai.APITimeoutError):
            return True
        if isinstance(item, openai.APIResponseValidationError):
            return True
        # A truncated or non-JSON body surfaces as a decode error from the client.
        if isinstance(item, json.JSONDecodeError | TimeoutError | ConnectionError):
            return True
    return False


def retry_after_seconds(error: BaseException) -> float | None:
    """The server's ``Retry-After`` (seconds or HTTP date, or ``retry-after-ms``), if any."""
    for item in _chain(error):
        response = getattr(item, "response", None)
        headers = getattr(response, "headers", None)
        if not headers:
            continue
        milliseconds = headers.get("retry-after-ms")
        if milliseconds:
            try:
                return max(0.0, float(milliseconds) / 1000)
            except ValueError:
                pass
        value = headers.get("retry-after")
        if not value:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
                return max(0.0, (when - datetime.now(UTC)).total_seconds())
            except (TypeError, ValueError):
                return None
    return None


class wait_retry_after:
    """Exponential backoff with jitter, or the server's Retry-After when it is longer."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.backoff = wait_exponential_jitter(initial=initial, max=maximum, jitter=initial)
        self.maximum = maximum

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = self.backoff(retry_state)
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        server = retry_after_seconds(error) if error is not None else None
        if server is None:
            return backoff
        # The server knows best, but a huge Retry-After must not stall a run for hours.
        return min(max(server, 0.0), max(self.maximum, backoff))


def transport_retrying(settings: LLMSettings) -> AsyncRetrying:
    """Retry transient failures of one request, bounded in attempts and total time."""
    return AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait_retry_after(settings.initial_wait, settings.max_wait),
        stop=stop_after_attempt(settings.max_attempts) | stop_after_delay(settings.max_total_wait),
        reraise=True,
    )


def validation_retrying(settings: LLMSettings) -> AsyncRetrying:
    """instructor's re-ask policy: validation errors only, at once, a few times."""
    return AsyncRetrying(
        retry=retry_if_exception_type((ValidationError, json.JSONDecodeError)),
        stop=stop_after_attempt(settings.validation_retries + 1),
        reraise=True,
    )


def describe_error(error: BaseException) -> str:
    """A one-paragraph error for the failed proposal row (attempts and last cause)."""
    attempts = getattr(error, "n_attempts", None)
    # The openai client says "Connection error." for anything its transport raised; the
    # transport's own reason (a deadline, a size cap, an HTML page) is the useful part.
    cause = next(
        (item for item in _chain(error) if isinstance(item, BadAnswer | httpx2.ProxyError)),
        error.__cause__ or error,
    )
    text = f"{type(cause).__name__}: {cause}"
    if attempts:
        text = f"after {attempts} attempt(s): {text}"
    return text[:MAX_ERROR_CHARS]
