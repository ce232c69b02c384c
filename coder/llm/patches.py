"""Speed patches of third-party internals, valid only for the pinned versions.

Both are guarded: an ``ImportError`` on another layout leaves the library alone, and
each is applied once (the replacement carries a marker).
:func:`coder.llm.client.instructor_client` applies the instructor one for every run and the
openai one only when the openai client is in use (``CODER_LLM_CLIENT=openai``): the direct
path never transforms a body through the openai client. They are only valid for
``openai==3.3.0`` and ``instructor==1.17.0``: re-measure ``benchmarks/bench_precode.py``
and re-check both before moving either pin. (A third, httpcore's idle-connection check
reaching anyio's socket directly, saved about 0.1 ms a call and was left out: it reached
into two more libraries' private attributes for 3% of the client's CPU.)
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from types import ModuleType
from typing import Any

from pydantic import BaseModel


def _replace_once(
    module: ModuleType | type, name: str, marker: str, wrap: Callable[[Any], Callable[..., Any]]
) -> None:
    """Put ``wrap(original)`` in place of ``module.name`` (a module's or a class's attribute)
    unless it is already there."""
    original = getattr(module, name)
    if getattr(original, marker, False):
        return
    replacement = wrap(original)
    setattr(replacement, marker, True)
    setattr(module, name, replacement)


def memoise_instructor_async_validator_check() -> None:
    """Make instructor's ``reject_async_validators`` remember the classes that passed."""
    # instructor walks the response model's whole type graph (every member of every class
    # in its MRO) about seven times per request to refuse async validators: ~1.5 ms of CPU
    # a call, the largest cost left at high concurrency. A class that passed once passes
    # again, so remember the classes that passed (failures are not cached).
    try:
        from instructor.v2.validation import async_validators
    except ImportError:  # pragma: no cover - another instructor layout: leave it alone
        return

    def wrap(original: Callable[[Any], None]) -> Callable[[Any], None]:
        passed: weakref.WeakSet[type] = weakref.WeakSet()

        def reject_async_validators(response_model: Any) -> None:
            if isinstance(response_model, type) and response_model in passed:
                return
            original(response_model)
            if isinstance(response_model, type):
                passed.add(response_model)

        return reject_async_validators

    _replace_once(async_validators, "reject_async_validators", "_coder_memoised", wrap)


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def _is_plain_json(value: Any) -> bool:
    """True when ``value`` serialises as JSON as is (no models, dates or other objects)."""
    # json.dumps walks the body in C and calls ``default`` only for what JSON cannot hold
    # as is; a recursive walk in Python cost about 0.15 ms per request body.
    try:
        json.dumps(value, default=_refuse, check_circular=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def plain_chat_request_transform() -> None:
    """Skip the openai client's request-body transform for chat bodies of plain JSON."""
    # The openai client walks every request body against its TypedDict annotations
    # (unions of six message types, the tool schema) to rename aliased keys and serialise
    # models and dates: ~0.6 ms of CPU per call, a fifth of the client's cost at
    # concurrency 32. Chat request params have no aliases, so a body of plain JSON needs
    # only the omitted arguments dropped; anything else goes through openai's own transform.
    try:
        from openai._utils import is_given
        from openai.resources.chat.completions import completions as module
        from openai.types.chat import completion_create_params
    except ImportError:  # pragma: no cover - another openai layout: leave it alone
        return
    chat_params = (
        completion_create_params.CompletionCreateParamsNonStreaming,
        completion_create_params.CompletionCreateParamsStreaming,
        completion_create_params.CompletionCreateParams,
    )

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        async def async_maybe_transform(data: Any, expected_type: Any) -> Any:
            if expected_type in chat_params and type(data) is dict:
                given = {key: value for key, value in data.items() if is_given(value)}
                if _is_plain_json(given):
                    return given
            return await original(data, expected_type)

        return async_maybe_transform

    _replace_once(module, "async_maybe_transform", "_coder_plain", wrap)


def as_response_schema(model: type[BaseModel]) -> type[BaseModel]:
    """``model`` wrapped once in instructor's ``ResponseSchema`` (so its schema is cached)."""
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
