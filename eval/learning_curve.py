"""``coder eval --learning-curve``: train on growing shares of a seeded training pool and
score each point (with its own baselines) on the same test items."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coder.backends.base import ProposalResult
from eval import baselines, runner
from eval.formatting import fmt_value
from eval.gold import GoldItem
from eval.run_baselines import StatusLine, naive_themes, score_baselines
from eval.scoring import Prediction, flatten, score
from schemas import Codebook

CURVE_METRICS = (
    "themes.micro_f1", "themes.macro_f1", "themes.samples_f1", "stance.accuracy",
    "stance.kappa", "relevance.f1", "relevance.kappa", "matching.map_strict",
    "matching.map_relaxed",
)  # fmt: skip


@dataclass
class Curve:
    """A learning curve, and the predictions, results and training size of its last point
    (the headline figures of the run), and that point's baselines (None without them)."""

    points: list[dict[str, Any]] = field(default_factory=list)
    predictions: dict[str, Prediction] = field(default_factory=dict)
    results: list[ProposalResult] = field(default_factory=list)
    n_train: int = 0
    baselines: dict[str, Any] | None = None


def _point(
    n_train: int, test: list[GoldItem], metrics: dict[str, Any], flat: dict[str, Any]
) -> dict[str, Any]:
    """One curve point's figures and their intervals."""
    return {
        "n_train": n_train,
        "n_test": len(test),
        **{key: flat.get(key) for key in CURVE_METRICS if key in flat},
        "ci": {key: metrics["ci"][key] for key in CURVE_METRICS if key in metrics["ci"]},
    }


def learning_curve(
    make: runner.BackendFactory,
    test: list[GoldItem],
    pool: list[GoldItem],
    codebook: Codebook,
    sizes_text: str,
    *,
    seed: int,
    resamples: int,
    with_baselines: bool,
    progress: Callable[[str], None],
    status: StatusLine,
) -> Curve:
    """Train on the first N of a seeded shuffle of ``pool`` for each size; score on ``test``.

    Each point carries its own baselines: the majority and TF-IDF fitted on that point's
    training items (the nearest theme does not learn, so it is computed once).
    """
    sizes = runner.parse_sizes(sizes_text)
    ordered = runner.learning_curve_pool(pool, seed)
    curve = Curve()
    naive: Any = None
    naive_done = False
    for size in sizes:
        curve.n_train = len(ordered) if size is None else min(size, len(ordered))
        classifier = make()
        runner.fit(classifier, ordered[: curve.n_train], codebook)
        curve.predictions, curve.results = runner.predict(classifier, test, codebook)
        metrics = score(codebook, test, curve.predictions, n_resamples=resamples, seed=seed)
        flat = flatten(metrics)
        point = _point(curve.n_train, test, metrics, flat)
        curve.points.append(point)
        if with_baselines:
            if not naive_done:  # the nearest theme does not learn: once for every point
                naive, naive_done = naive_themes(make, codebook, test, status), True
            split = baselines.Split(ordered[: curve.n_train], test)
            curve.baselines = score_baselines(codebook, test, [split], seed, metrics, naive)
            point["baselines"] = baselines.curve_point(curve.baselines)
        progress(
            f"learning curve: {curve.n_train} training items -> micro F1 "
            f"{fmt_value(flat.get('themes.micro_f1'))}, macro F1 "
            f"{fmt_value(flat.get('themes.macro_f1'))}"
        )
    return curve
