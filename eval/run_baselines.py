"""The baselines of one eval run: the nearest theme with the run's shared encoder, and the
baseline block scored on the run's own (training, test) splits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eval import baselines
from eval.gold import GoldItem
from eval.runner import BackendFactory
from schemas import Codebook

#: ``status(text, problem)``: a line about what the run does now (stderr in the CLI)
StatusLine = Callable[[str, bool], None]


def score_baselines(
    codebook: Codebook,
    items: list[GoldItem],
    splits: list[baselines.Split],
    seed: int,
    model_metrics: dict[str, Any],
    naive_themes: Any,
) -> dict[str, Any]:
    """Score the baselines on the run's splits (``naive_themes`` None: no encoder)."""
    return baselines.evaluate(
        codebook,
        items,
        splits,
        naive_themes=naive_themes,
        tfidf=True,
        seed=seed,
        model_metrics=model_metrics,
    )


def naive_themes(
    make: BackendFactory, codebook: Codebook, items: list[GoldItem], status: StatusLine
) -> Any:
    """Nearest-theme predictions with the run's shared encoder (None, with a warning, if absent)."""
    status("Scoring baselines (nearest theme, majority class)...", False)
    predictions, problem = baselines.naive_themes_or_none(codebook, items, make.encoder)
    if problem:
        status(f"No nearest-theme baseline: {problem}", True)
    return predictions
