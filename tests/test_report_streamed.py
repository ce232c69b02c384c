"""The streamed report (one pass, counts and a bounded quote pool) equals the in-memory one.

``build_report`` no longer holds every response; these tests build projects of a few hundred
responses with repeated and near-repeated answers, stance-only answers, flagged quotes,
respondents with several answers, attributes spelled several ways, codes outside the
codebook and uncoded responses, and check that the streamed build gives exactly the
ReportData and Markdown of the old in-memory build (kept in tests/report_reference_inmemory.py),
including when the quote pool is so small that a question must be read again.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest

from coder.report.markdown import render_markdown
from coder.report.model import UnknownAttributionField, build_report
from coder.report.quotes import (
    QuoteKeys,
    QuotePool,
    normalise,
    select_from_pool,
    select_quotes,
)
from coder.store import Store
from schemas import Codebook, Labels, Proposal, Response, ThemeAssignment
from tests import report_reference_inmemory as reference
from tests.report_project import CODEBOOK

SENTENCES = [
    "Joining up primary and secondary care funding is the only way pathways last.",
    "Joining up primary and secondary care funding is the only way pathways last!",
    "joining up primary and secondary care funding is the only way pathways last",
    "Local teams need room to adapt national policy to their diverse communities.",
    "Local teams need room to adapt national policy to their diverse communities and staff.",
    "Nobody owned the pathway so the project stalled after the pilot money ran out.",
    "Evidence from other regions helped our business case get through the board quickly.",
    "Workforce shortages stop clinicians from having time to learn any new pathway.",
    "Patients benefit when the whole pathway is redesigned rather than a single step.",
    "Commissioners want savings within one year which most innovations cannot show.",
    "Yes",
    "Strongly resonates",
    "n/a",
    "Agree 100%",
    "Short but sharp point.",
]
ROLES = ["Innovator", "innovator", "  Innovator ", "NHS organisation", "Clinician", "", None]
ORGANISATIONS = ["HI Wessex", "hi wessex", "North Trust", "AppCo", None]
STANCES = ["resonates", "partly", "does_not_resonate", "unclear", None]
CODES = ["patient_benefit", "system_working", "primary_secondary", "funding", "local_needs"]


def build_project(path: Path, *, seed: int, flag_quotes: bool, codebook: Codebook) -> Store:
    """A few hundred responses across H1, H2, a question not in the codebook and none."""
    rng = random.Random(seed)
    store = Store(path)
    version = store.save_codebook(codebook, source="test")
    responses = []
    for index in range(360):
        attributes: dict[str, Any] = {}
        if rng.random() < 0.9:
            attributes["role"] = rng.choice(ROLES)
            attributes["organisation"] = rng.choice(ORGANISATIONS)
        if rng.random() < 0.2:
            attributes["organisation_type"] = rng.choice(["NHS trust", "SME"])
        sentence = rng.choice(SENTENCES)
        # Some answers carry one more distinct clause; many repeat a sentence exactly.
        text = sentence if rng.random() < 0.6 else f"{sentence} Point {index % 7} in our area."
        responses.append(
            Response(
                id=f"s{index:03d}",
                question=rng.choice(["H1", "H1", "H2", "H2", "H9", None]),
                respondent=None if rng.random() < 0.15 else f"p{rng.randrange(40)}",
                tags=rng.sample(["NHSSomerset", "BNSSG", "Dorset"], k=rng.randrange(3)),
                text=text,
                attributes=attributes,
            )
        )
    store.add_responses(responses)
    for response in responses:
        if rng.random() < 0.08:
            continue  # not yet coded
        question = response.question or "H1"
        codes = rng.sample([*CODES, "ghost_code"], k=rng.choice([0, 1, 1, 2, 3]))
        relevant = rng.random() > 0.1
        proposal = Proposal(
            response_id=response.id,
            question=question if rng.random() > 0.05 else "H2",
            stance=rng.choice(STANCES),
            relevant=relevant,
            relevance_reason=None if relevant else rng.choice(["no content", None]),
            themes=[ThemeAssignment(code=code, evidence=None) for code in codes],
            # Rounded, so many answers tie on confidence and length or order decides.
            confidence=round(rng.random(), 1),
        )
        store.add_proposal(
            response_id=response.id,
            backend="local",
            model="test-model",
            proposal=proposal,
            codebook_version=version,
        )
        if rng.random() < 0.25:
            labels = Labels.from_proposal(proposal)
            if flag_quotes and proposal.question == "H1" and rng.random() < 0.5:
                labels = labels.model_copy(update={"quote": True})
            store.add_decision(
                response_id=response.id, reviewer="ana", action="accept", labels=labels
            )
    return store


def _as_dict(report: Any) -> dict[str, Any]:
    return dataclasses.asdict(report)


@pytest.mark.parametrize("flag_quotes", [False, True])
@pytest.mark.parametrize("imply_parent", [False, True])
def test_streamed_report_equals_in_memory(
    tmp_path: Path, flag_quotes: bool, imply_parent: bool
) -> None:
    codebook = CODEBOOK.model_copy(update={"sub_themes_imply_parent": imply_parent})
    with build_project(
        tmp_path / "p.db", seed=7, flag_quotes=flag_quotes, codebook=codebook
    ) as store:
        for options in ({}, {"attribution_field": "organisation"}, {"max_quotes": 6}):
            streamed = build_report(store, **options)  # type: ignore[arg-type]
            expected = reference.build_report(store, **options)  # type: ignore[arg-type]
            assert _as_dict(streamed) == _as_dict(expected), options
            assert render_markdown(streamed) == render_markdown(expected)  # type: ignore[arg-type]
            assert any(question.quotes for question in streamed.questions)


@pytest.mark.parametrize("pool_size", [1, 2, None])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_small_quote_pools_still_choose_the_same_quotes(
    tmp_path: Path, pool_size: int | None, seed: int
) -> None:
    # A pool of one per group cannot prove its picks, so questions are read again in full.
    with build_project(
        tmp_path / "p.db", seed=seed, flag_quotes=seed == 2, codebook=CODEBOOK
    ) as store:
        streamed = build_report(store, quote_pool_size=pool_size, max_quotes=4)
        expected = reference.build_report(store, max_quotes=4)
        assert _as_dict(streamed) == _as_dict(expected)


def test_unknown_attribution_field_is_refused_before_reading(tmp_path: Path) -> None:
    with build_project(tmp_path / "p.db", seed=1, flag_quotes=False, codebook=CODEBOOK) as store:
        with pytest.raises(UnknownAttributionField) as streamed_error:
            build_report(store, attribution_field="organisaton")
        with pytest.raises(reference.UnknownAttributionField) as expected_error:
            reference.build_report(store, attribution_field="organisaton")
    assert str(streamed_error.value) == str(expected_error.value)
    assert "Did you mean 'organisation'?" in str(streamed_error.value)


KEYS: QuoteKeys[tuple[str, str, str]] = QuoteKeys(
    text=lambda item: item[1],
    person=lambda item: item[0],
    role=lambda item: item[2],
    organisation=lambda item: None,
    themes=lambda item: [item[0]],
)


def test_pool_proves_its_picks_or_says_it_cannot() -> None:
    candidates = [
        ("ann", "Funding follows organisations and not the pathway itself.", "Innovator"),
        ("ann", "Workforce shortages stop clinicians learning new pathways.", "Innovator"),
        ("bob", "Funding follows organisations and not the pathway itself!", "Innovator"),
        ("cat", "Evidence from other regions helped the business case.", "Innovator"),
        ("dan", "Commissioners want savings within one year, not five.", "Innovator"),
    ]
    pools: dict[int, QuotePool[tuple[str, str, str]]] = {
        size: QuotePool(size) for size in (1, 3, 4)
    }
    for rank, item in enumerate(candidates):
        for pool in pools.values():
            if pool.has_room("one group", (rank,)):
                pool.add("one group", (rank,), item)
    assert normalise(candidates[0][1]) == normalise(candidates[2][1])
    # The full list quotes ann, then cat (bob repeats ann's answer; ann is quoted already).
    assert [item[0] for item in select_quotes(candidates, KEYS, 2)] == ["ann", "cat"]
    # Four kept (dan turned away): cat is among them, so the pool proves its picks.
    assert select_from_pool(pools[4], KEYS, 2) == select_quotes(candidates, KEYS, 2)
    # Three kept: after ann's answer only ann again and bob's repeat are left, so cat, who
    # was turned away, might have been the pick: the pool says it cannot tell.
    assert select_from_pool(pools[3], KEYS, 2) is None
    assert select_from_pool(pools[1], KEYS, 2) is None
    assert select_from_pool(pools[1], KEYS, 1) == select_quotes(candidates, KEYS, 1)
