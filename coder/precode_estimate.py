"""``coder precode --dry-run``: what a run would do, with nothing sent and nothing stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coder.backends.base import Classifier
from coder.precode import responses_to_precode
from coder.store import Store


@dataclass
class DryRun:
    """Responses a run would pre-code, how many the cache would serve, and (for a backend
    that can estimate) its calls, tokens and cost."""

    todo: int
    cached: int
    #: the backend's ``Estimate`` (``coder.llm.planning``), None when it has no estimate
    estimate: Any = None


def dry_run(
    store: Store, classifier: Classifier, *, redo: bool = False, limit: int | None = None
) -> DryRun:
    """Estimate a precode run over the responses ``precode`` would pick (no network)."""
    version, codebook = store.codebook()
    todo = responses_to_precode(store, version, redo=redo, limit=limit)
    estimate = getattr(classifier, "estimate", None)
    if estimate is None:
        return DryRun(todo=len(todo), cached=0)
    input_hash = getattr(classifier, "input_hash", None)
    remaining = todo
    if input_hash is not None:
        remaining = [r for r in todo if store.cached_proposal(input_hash(r, codebook)) is None]
    return DryRun(
        todo=len(remaining),
        cached=len(todo) - len(remaining),
        estimate=estimate(remaining, codebook),
    )
