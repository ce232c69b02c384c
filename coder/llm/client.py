"""The instructor client a run's calls go through: instructor over our logging transport
(every attempt logged, guarded, sent through the run's proxies).

By default instructor's ``create`` is :class:`coder.llm.direct_chat.DirectChat`, which
posts the request itself (about a quarter less client CPU per call than the openai client);
``CODER_LLM_CLIENT=openai`` puts openai's async client in between, as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx2
import instructor
import openai

from coder.llm import direct_chat
from coder.llm.patches import memoise_instructor_async_validator_check, plain_chat_request_transform
from coder.llm.transport import LoggingTransport

if TYPE_CHECKING:
    from coder.llm.classifier import LLMClassifier

MODES = {
    "tools": instructor.Mode.TOOLS,
    "json": instructor.Mode.JSON,
    "json_schema": instructor.Mode.JSON_SCHEMA,
    "md_json": instructor.Mode.MD_JSON,
}

#: seconds to open a connection (the whole attempt has --request-timeout)
CONNECT_TIMEOUT = 10.0


def instructor_client(classifier: LLMClassifier, api_key: str) -> Any:
    """An instructor client for ``classifier``'s endpoint and mode, sending ``api_key``.

    Its ``client`` has an async ``close()`` for the end of the run."""
    memoise_instructor_async_validator_check()
    settings = classifier.settings
    transport = LoggingTransport(classifier, max(1, settings.concurrency))
    mode = MODES[settings.resolved_mode]
    if direct_chat.wanted():
        chat = direct_chat.DirectChat(
            transport,
            settings.resolved_base_url,
            api_key,
            request_timeout=settings.request_timeout,
            connect_timeout=CONNECT_TIMEOUT,
        )
        # instructor's public route for any create callable: patch() wraps it with the
        # response model, re-asks and hooks, exactly as from_openai wraps the client's.
        create = instructor.patch(create=chat.create, mode=mode)
        return instructor.AsyncInstructor(
            client=chat, create=create, mode=mode, provider=instructor.Provider.OPENAI
        )
    # Only the openai client transforms request bodies (and importing its resources takes
    # about 0.4 s, so the direct path never does).
    plain_chat_request_transform()
    http_client = httpx2.AsyncClient(
        transport=transport,
        timeout=httpx2.Timeout(settings.request_timeout, connect=CONNECT_TIMEOUT),
    )
    raw = openai.AsyncOpenAI(
        api_key=api_key,
        base_url=settings.resolved_base_url,
        # Our tenacity policy is the only retry layer (see coder.llm.retry).
        max_retries=0,
        timeout=settings.request_timeout,
        http_client=http_client,
    )
    return instructor.from_openai(raw, mode=mode)
