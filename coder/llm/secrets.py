"""Keep API keys out of everything coder stores or prints.

A server (or a proxy, or a model told to do so by a prompt injection) may echo the key it
was sent: in an error body, but also inside a *successful* answer, e.g. in the model name or
the rationale. :func:`scrub` replaces the configured key and anything shaped like a
well-known key (``sk-...``, ``sk-ant-...``, ``AIza...``, ``hf_...``, ``ghp_...``, a bearer
token) with ``[API key]``; :func:`scrub_value` does so throughout nested data and pydantic
models. The LLM path scrubs every proposal, model version, error and call log before it is
stored or printed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel

from coder.backends.base import ProposalResult

MASK = "[API key]"
#: Shapes of common API keys and tokens; long enough not to hit ordinary words.
KEY_PATTERNS = re.compile(
    r"\b(?:sk-(?:proj-|ant-|or-)?[A-Za-z0-9_\-]{16,}"
    r"|AIza[0-9A-Za-z_\-]{30,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|xai-[A-Za-z0-9]{30,})"
    r"|(?<=Bearer )[A-Za-z0-9._~+/\-]{16,}=*"
)
#: Configured keys shorter than this are not searched for (they would mask ordinary text).
MIN_KEY_LENGTH = 8


def scrub(text: str, keys: Iterable[str | None] = ()) -> str:
    """``text`` with the given keys and anything shaped like an API key masked."""
    for key in keys:
        if key and len(key) >= MIN_KEY_LENGTH and key in text:
            text = text.replace(key, MASK)
    return KEY_PATTERNS.sub(MASK, text)


def scrub_value(value: Any, keys: Iterable[str | None] = ()) -> Any:
    """:func:`scrub` applied to every string in ``value`` (dicts, lists, pydantic models).

    Pydantic models are rebuilt without validation (``model_construct``) from the scrubbed
    data, so a scrubbed evidence quote does not fail the 'quote is in the text' check.
    """
    keys = tuple(keys)
    if isinstance(value, str):
        return scrub(value, keys)
    if isinstance(value, BaseModel):
        data = {name: scrub_value(getattr(value, name), keys) for name in type(value).model_fields}
        return type(value).model_construct(**data)
    if isinstance(value, list):
        return [scrub_value(item, keys) for item in value]
    if isinstance(value, tuple):
        return tuple(scrub_value(item, keys) for item in value)
    if isinstance(value, dict):
        return {scrub_value(k, keys): scrub_value(item, keys) for k, item in value.items()}
    return value


def contains_secret(text: str, keys: Iterable[str | None] = ()) -> bool:
    """True if :func:`scrub` would change ``text``."""
    return scrub(text, keys) != text


def scrub_result(result: ProposalResult, keys: Sequence[str]) -> ProposalResult:
    """``result`` with the keys masked in its proposal, model version, error and params."""
    return dataclasses.replace(
        result,
        proposal=scrub_value(result.proposal, keys),
        model_version=scrub(result.model_version, keys) if result.model_version else None,
        error=scrub(result.error, keys) if result.error else None,
        params=scrub_value(result.params, keys),
    )
