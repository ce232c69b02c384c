"""Chat-completion calls posted straight through our transport, without the openai client.

At concurrency 32 the client's one event-loop thread sets the pace, and the openai
client's request and response machinery (options copied per attempt, URL merged and
parsed, headers merged, the body walked against its TypedDicts, the answer built field by
field through ``construct``) was about a quarter of that thread's CPU per call. instructor
takes any ``create`` callable (``instructor.patch(create=...)``, ``AsyncInstructor``: its
public API), so :class:`DirectChat` gives it one that sends the same JSON body through the
same :class:`coder.llm.transport.LoggingTransport` (every attempt logged, one deadline,
the size cap, non-JSON refused) and reads the answer with pydantic's JSON validator.

Failures become the openai client's own public exceptions, with the same classes, messages
and ``response``, so :mod:`coder.llm.retry` is unchanged: a 4xx/5xx becomes the
:class:`openai.APIStatusError` subclass the openai client would raise (``RateLimitError``
carries the answer and its ``Retry-After``), a timeout :class:`openai.APITimeoutError`,
anything else the transport raised :class:`openai.APIConnectionError` (its cause kept, so
the transport's own reason still reaches the user).

``CODER_LLM_CLIENT=openai`` keeps the openai client under instructor (for A/B runs, or to
rule this path out); the Batch API always uses the openai client.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx2
import openai
import pydantic_core
from openai.types.chat import ChatCompletion
from pydantic import ValidationError

from coder import __version__

#: environment variable: ``openai`` sends calls through the openai client instead
ENV_VAR = "CODER_LLM_CLIENT"

#: arguments of the openai client's ``create`` that are not part of the request body; a
#: caller passing one of them needs the openai client (refused here, never dropped)
_CLIENT_ONLY = frozenset({"extra_headers", "extra_query", "extra_body", "timeout", "stream"})

#: openai's status-code mapping (openai.AsyncOpenAI._make_status_error), public classes
_STATUS_ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    409: openai.ConflictError,
    422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
}


def wanted() -> bool:
    """True unless ``CODER_LLM_CLIENT=openai`` asks for the openai client."""
    return os.environ.get(ENV_VAR, "").strip().lower() != "openai"


def status_error(response: httpx2.Response) -> openai.APIStatusError:
    """The exception the openai client raises for this non-2xx answer (same class,
    message and body)."""
    text = response.text.strip()
    body: Any = text
    try:
        body = json.loads(text)
        message = f"Error code: {response.status_code} - {body}"
    except ValueError:
        message = text or f"Error code: {response.status_code}"
    data = body.get("error", body) if isinstance(body, dict) else body
    status = response.status_code
    error_class = _STATUS_ERRORS.get(status)
    if error_class is None:
        error_class = openai.InternalServerError if status >= 500 else openai.APIStatusError
    return error_class(message, response=response, body=data)


def parse_completion(content: bytes) -> ChatCompletion:
    """A 200 answer as openai's ``ChatCompletion``: validated by pydantic in one pass, or,
    for a server that bends the schema (a missing ``created``, a tool call without
    ``type``), built leniently as the openai client builds every answer."""
    try:
        return ChatCompletion.model_validate_json(content)
    except ValidationError:
        return ChatCompletion.construct(**json.loads(content))


class DirectChat:
    """``POST {base_url}/chat/completions`` through ``transport``; see the module's doc."""

    def __init__(
        self,
        transport: httpx2.AsyncBaseTransport,
        base_url: str,
        api_key: str,
        *,
        request_timeout: float,
        connect_timeout: float = 10.0,
    ) -> None:
        base = httpx2.URL(base_url)
        self.transport = transport
        # Parsed once: httpx2 parses a URL given as text on every request.
        self.url = base.copy_with(path=base.path.rstrip("/") + "/chat/completions")
        self.headers = [
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
            ("User-Agent", f"coder/{__version__}"),
            ("Authorization", f"Bearer {api_key}"),
        ]
        self.extensions = {
            "timeout": {
                "connect": connect_timeout,
                "read": request_timeout,
                "write": request_timeout,
                "pool": request_timeout,
            }
        }

    def request(self, params: dict[str, Any]) -> httpx2.Request:
        """The HTTP request for ``create(**params)``: the body as the openai client sends it."""
        refused = _CLIENT_ONLY.intersection(params)
        if refused:
            raise TypeError(
                f"{', '.join(sorted(refused))}: not sent by coder's direct client "
                f"(set {ENV_VAR}=openai to use the openai client)"
            )
        # Serialised in Rust (pydantic-core): a third of json.dumps' time for a ~20 kB body
        # of messages and tool schema. A pydantic model in it (a typed message) is written
        # as its JSON; anything JSON cannot hold is refused, never sent as its repr.
        try:
            body = pydantic_core.to_json(params)
        except pydantic_core.PydanticSerializationError as error:
            raise TypeError(f"the request cannot be sent as JSON: {error}") from error
        return httpx2.Request(
            "POST",
            self.url,
            headers=self.headers,
            content=body,
            extensions=self.extensions,
        )

    async def create(self, **params: Any) -> ChatCompletion:
        """One chat completion: ``params`` are the request body's fields (model, messages,
        tools, ...), as for ``openai.AsyncOpenAI().chat.completions.create``."""
        request = self.request(params)
        try:
            response = await self.transport.handle_async_request(request)
            # As httpx's client does with a transport's answer: tie it to its request and
            # read it (LoggingTransport's answers are read already: this costs nothing).
            response.request = request
            content = await response.aread()
        except httpx2.TimeoutException as error:
            raise openai.APITimeoutError(request=request) from error
        except Exception as error:
            raise openai.APIConnectionError(request=request) from error
        # As the openai client's raise_for_status: anything but 2xx (a redirect too).
        if not response.is_success:
            raise status_error(response)
        return parse_completion(content)

    async def close(self) -> None:
        """Close the transport's connections."""
        await self.transport.aclose()
