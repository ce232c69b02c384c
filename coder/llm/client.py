"""The instructor client a run's calls go through: openai's async client over our
logging transport (every attempt logged, guarded, sent through the run's proxies)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx2
import instructor
import openai

from coder.llm.patches import apply_speed_patches
from coder.llm.transport import LoggingTransport

if TYPE_CHECKING:
    from coder.llm.classifier import LLMClassifier

MODES = {
    "tools": instructor.Mode.TOOLS,
    "json": instructor.Mode.JSON,
    "json_schema": instructor.Mode.JSON_SCHEMA,
    "md_json": instructor.Mode.MD_JSON,
}


def instructor_client(classifier: LLMClassifier, api_key: str) -> Any:
    """An instructor client for ``classifier``'s endpoint and mode, sending ``api_key``."""
    apply_speed_patches()
    settings = classifier.settings
    http_client = httpx2.AsyncClient(
        transport=LoggingTransport(classifier, max(1, settings.concurrency)),
        timeout=httpx2.Timeout(settings.request_timeout, connect=10.0),
    )
    raw = openai.AsyncOpenAI(
        api_key=api_key,
        base_url=settings.resolved_base_url,
        # Our tenacity policy is the only retry layer (see coder.llm.retry).
        max_retries=0,
        timeout=settings.request_timeout,
        http_client=http_client,
    )
    return instructor.from_openai(raw, mode=MODES[settings.resolved_mode])
