"""Adjudication and the command palette, driven through the app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coder.store import Store
from review_tui.adjudication_screen import AdjudicationScreen
from review_tui.review_screen import ReviewScreen
from schemas import Labels
from tests.review_data import build_project, review_app, small_codebook


async def wait_until(pilot: Any, condition: Callable[[], bool], steps: int = 3000) -> None:
    """Let the app run until ``condition`` holds: a poll, not a fixed sleep (30 s at most)."""
    for _ in range(steps):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError("condition not reached")


SIZE = (120, 40)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = build_project(tmp_path / "adjudicate.db", 12, codebook=small_codebook())
    for response_id in sorted(store.current_proposals())[:2]:
        store.add_decision(
            response_id=response_id,
            reviewer="ann",
            action="correct",
            labels=Labels(question="H1", themes=["data"]),
        )
        store.add_decision(
            response_id=response_id,
            reviewer="bob",
            action="correct",
            labels=Labels(question="H1", themes=["funding", "leadership"]),
        )
    return store


async def test_adjudicate_takes_reviewer_b(store: Store) -> None:
    app = review_app(store, reviewer="cat")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("j")
        assert isinstance(app.screen, AdjudicationScreen)
        screen = app.screen
        assert (screen.first, screen.second) == ("ann", "bob")
        assert len(screen.items) == 2
        first = screen.items[0].entry.response_id
        await pilot.press("2")
        decision = store.decisions()[-1]
        assert (decision.response_id, decision.reviewer, decision.action) == (
            first,
            "cat",
            "adjudicate",
        )
        assert decision.labels is not None and decision.labels.themes == ["funding", "leadership"]
        assert len(screen.items) == 1
        await pilot.press("m")
        assert store.decisions()[-1].action == "adjudicate"
        assert screen.items == []
        assert screen.check_action("choose", ("a",)) is False
        await pilot.press("escape")
        assert isinstance(app.screen, ReviewScreen)


async def test_adjudicate_option_opens_the_screen(store: Store) -> None:
    app = review_app(store, reviewer="cat", adjudicate=("ann", "bob"))
    async with app.run_test(size=SIZE):
        assert isinstance(app.screen, AdjudicationScreen)


async def test_palette_jumps_to_a_response_by_text_and_filters(store: Store) -> None:
    app = review_app(store, reviewer="cat")
    async with app.run_test(size=SIZE) as pilot:
        target = next(r for r in store.responses() if r.text == "Did not answer.")
        app.go_to(target.id)
        assert app.session.item is not None and app.session.item.response.id == target.id
        app.apply_filter("status:unreviewed question:H2")
        assert app.session.view and all(e.question == "H2" for e in app.session.view)
        # The palette's provider offers a jump for text it finds.
        await pilot.press("ctrl+p")
        await pilot.press(*"Did not answer")
        from textual.command import CommandPalette

        # Wait for the condition (the palette is up), not for a fixed time.
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press("escape")
        app.switch_reviewer("ann")
        assert app.session.reviewer == "ann"
