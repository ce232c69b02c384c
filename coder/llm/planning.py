"""Planning a run: which responses share a request, and what the run would cost."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from coder.llm.config import LLMSettings
from coder.llm.context_window import COMPLETION_TOKENS_PER_RESPONSE, ContextTooSmall
from coder.llm.pricing import PriceTable, estimate_tokens
from schemas import Response


@dataclass
class PlannedRequest:
    """One request to make: responses that share a system prompt."""

    question_id: str | None
    responses: list[Response]


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


def plan_requests(responses: Sequence[Response], settings: LLMSettings) -> list[PlannedRequest]:
    """Group responses into requests: by question, token-aware, ``batch_size`` at most."""
    if settings.batch_size <= 1:
        return [PlannedRequest(r.question, [r]) for r in responses]
    by_question: dict[str | None, list[Response]] = {}
    for response in responses:
        by_question.setdefault(response.question, []).append(response)
    planned: list[PlannedRequest] = []
    for question_id, group in by_question.items():
        current: list[Response] = []
        tokens = 0
        for response in group:
            size = estimate_tokens(response.text) + 20
            if current and (
                len(current) >= settings.batch_size or tokens + size > settings.batch_max_tokens
            ):
                planned.append(PlannedRequest(question_id, current))
                current, tokens = [], 0
            current.append(response)
            tokens += size
        if current:
            planned.append(PlannedRequest(question_id, current))
    return planned


def estimate_run(
    planned: Sequence[PlannedRequest],
    prompt_of: Callable[[PlannedRequest], Any],
    prices: PriceTable,
    settings: LLMSettings,
) -> Estimate:
    """Calls, tokens and cost of the ``planned`` requests (``prompt_of`` builds a request's
    prompt, or raises :class:`ContextTooSmall` for one that cannot fit)."""
    prompt_tokens = completion_tokens = too_big = 0
    for request in planned:
        try:
            prompt = prompt_of(request)
        except ContextTooSmall:
            too_big += 1
            continue
        prompt_tokens += prompt.tokens
        completion_tokens += COMPLETION_TOKENS_PER_RESPONSE * len(request.responses)
    cost = prices.cost(settings.model, prompt_tokens, completion_tokens, local=settings.is_local)
    return Estimate(
        calls=len(planned),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=cost,
        model=settings.model,
        base_url=settings.resolved_base_url,
        extra={"requests_too_big_for_context": too_big} if too_big else {},
    )
