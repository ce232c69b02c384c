"""Codebook robustness: zero-shot must beat the naive baseline on every codebook we have.

Each case runs the local (embedded) classifier zero-shot exactly as ``coder eval`` does
(``eval.runner``: one factory, the set's unlabelled answers handed to the classifier, then
``runner.predict`` and ``eval.scoring.score``) and scores the naive baseline the same way
``coder eval`` does (``eval.baselines``: nearest theme for themes, majority class for stance
and relevance). The assertion is themes micro-F1 of zero-shot > naive.

The cases are four small sets written for this test (``tests/codebooks/``: different
domains, sizes, flat and hierarchical, with and without examples, question-limited
themes, a no-stance question) and the open gold sets in ``../shared/gold``. A change that
helps one codebook and breaks another fails here. A case where zero-shot does not yet
beat naive is marked ``xfail(strict=True)`` with its figures, so the gap stays visible and
the mark must be removed the day it is closed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eval import baselines, runner
from eval.gold import GoldItem, load_gold
from eval.scoring import score
from schemas import Codebook
from tests.conftest import shared_path

pytest.importorskip("coder.embedded.classifier", reason="the local backend is not available")

CODEBOOKS = Path(__file__).resolve().parent / "codebooks"
NHS_SAMPLE = 1500
SEED = 0


@dataclass(frozen=True)
class GoldSet:
    """A codebook, every item of the set (the classifier's unlabelled answers), the scored items."""

    codebook: Codebook
    all_items: list[GoldItem]
    items: list[GoldItem]


def _own(name: str) -> Callable[[], GoldSet]:
    def load() -> GoldSet:
        folder = CODEBOOKS / name
        codebook, items = load_gold(codebook=folder / "codebook.yaml", items=folder / "items.jsonl")
        return GoldSet(codebook, items, items)

    return load


def _rapid_insight() -> GoldSet:
    folder = shared_path("gold", "rapid_insight_dev")
    codebook, items = load_gold(codebook=folder / "codebook.yaml", items=folder / "items.jsonl")
    return GoldSet(codebook, items, items)


def _nhs_sample() -> GoldSet:
    # A seeded sample keeps the case under a minute; the sample is the set the classifier
    # sees, as if `coder eval` were pointed at a 1,500-item file.
    codebook, items = load_gold(shared_path("gold", "nhs_pxtextmining_v6"))
    sample = random.Random(SEED).sample(items, NHS_SAMPLE)
    return GoldSet(codebook, sample, sample)


def _argkp_dev() -> GoldSet:
    # As `coder eval --test-filter meta.source_split=dev`: the classifier sees every answer
    # of the file unlabelled; only the source's dev split is scored.
    codebook, items = load_gold(shared_path("gold", "argkp_2021"))
    dev = [item for item in items if item.meta.get("source_split") == "dev"]
    return GoldSet(codebook, items, dev)


def _xfail(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=reason)


CASES = [
    pytest.param(_own("ward_feedback"), id="ward_feedback"),
    pytest.param(_own("remote_work_staff"), id="remote_work_staff"),
    pytest.param(_own("bus_consultation"), id="bus_consultation"),
    pytest.param(_own("virtual_wards"), id="virtual_wards"),
    pytest.param(_rapid_insight, id="gold-rapid_insight_dev"),
    pytest.param(_nhs_sample, id="gold-nhs_pxtextmining_v6-1500", marks=pytest.mark.slow),
    pytest.param(_argkp_dev, id="gold-argkp_2021-dev", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def make() -> runner.BackendFactory:
    """One local-backend factory for the module: its caching encoder is shared by all cases."""
    return runner.factory("local")


def zero_shot_and_naive(
    make: runner.BackendFactory, gold: GoldSet
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(zero-shot metrics, naive baseline figures) as `coder eval` computes them."""
    make.unlabelled = ([item.to_response() for item in gold.all_items], gold.codebook)
    classifier = make()
    predictions, results = runner.predict(classifier, gold.items, gold.codebook)
    failed = [result.response_id for result in results if not result.ok]
    assert not failed, f"the local classifier failed on {failed[:5]}"
    metrics = score(gold.codebook, gold.items, predictions, n_resamples=0)
    naive_themes = baselines.nearest_theme_predictions(gold.codebook, gold.items, make.encoder())
    block = baselines.evaluate(
        gold.codebook,
        gold.items,
        [baselines.Split([], gold.items)],
        naive_themes=naive_themes,
        tfidf=False,
        model_metrics=metrics,
    )
    return metrics, block[baselines.NAIVE]["metrics"]


def _figure(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@pytest.mark.parametrize("load", CASES)
def test_zero_shot_beats_naive_baseline(
    make: runner.BackendFactory, load: Callable[[], GoldSet]
) -> None:
    gold = load()
    metrics, naive = zero_shot_and_naive(make, gold)
    zero_shot_f1 = metrics["themes"]["micro_f1"]
    naive_f1 = naive["themes.micro_f1"]
    print(
        f"\n{gold.codebook.name}: {len(gold.items)} items | themes micro-F1 naive "
        f"{_figure(naive_f1)}, zero-shot {_figure(zero_shot_f1)} | stance accuracy "
        f"zero-shot {_figure(metrics.get('stance', {}).get('accuracy'))}, majority "
        f"{_figure(naive.get('stance.accuracy'))} | not-relevant F1 zero-shot "
        f"{_figure(metrics.get('relevance', {}).get('f1'))}"
    )
    assert zero_shot_f1 is not None and naive_f1 is not None
    assert zero_shot_f1 > naive_f1, (
        f"{gold.codebook.name}: zero-shot themes micro-F1 {zero_shot_f1:.3f} does not beat "
        f"the naive nearest-theme baseline {naive_f1:.3f}"
    )


@pytest.mark.parametrize(
    "name", ["ward_feedback", "remote_work_staff", "bus_consultation", "virtual_wards"]
)
def test_own_codebooks_are_what_they_claim(name: str) -> None:
    """Each set is well formed and covers what it was written for (so it cannot rot quietly)."""
    gold = _own(name)()
    codebook, items = gold.codebook, gold.items
    assert 30 <= len(items) <= 40
    assert {item.question for item in items} == set(codebook.question_ids)
    known = set(codebook.theme_ids)
    for item in items:
        assert item.group == item.question, item.id
        assert set(item.labels) <= known and set(item.uncertain_labels) <= known, item.id
        assert not set(item.labels) & set(item.uncertain_labels), item.id
        for code in item.labels:
            assert codebook.theme(code).applies_to(item.question), (item.id, code)
        if item.relevant is False:
            assert not item.labels and item.stance is None, item.id
        if item.stance is not None:
            assert item.stance in codebook.stance_ids, item.id
            assert codebook.has_stance(item.question), item.id
    relevant = [item for item in items if item.relevant is not False]
    assert sum(1 for item in items if item.relevant is False) >= 2
    assert any(not item.labels and item.stance for item in relevant)  # stance-only answers
    assert any(len(item.labels) >= 2 for item in relevant)  # multi-theme answers
    used = {code for item in items for code in item.labels}
    assert used == known, f"themes never used: {sorted(known - used)}"
