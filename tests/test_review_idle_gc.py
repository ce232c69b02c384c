"""Full garbage collections wait for a pause in the reviewer's keys (issue 20).

A full collection at 100,000 answers took 150 ms and landed on a key press; the app now
puts Python's own full collections off and runs them when the reviewer pauses
(review_tui/idle_gc.py). The pause is read from the collector's clock, which these tests
drive by hand: no sleeps, no wall-clock asserts.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from coder.store import Store
from review_tui.idle_gc import BACKSTOP, IdleCollector
from review_tui.queue_screen import QueueScreen
from review_tui.queue_table import QueueTable
from tests.review_data import build_project, review_app, small_codebook

SIZE = (120, 40)
NEVER = 10**9  # a busy budget the keys of a test never reach


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return build_project(tmp_path / "review.db", 40, codebook=small_codebook())


@pytest.fixture
def full_collections() -> Iterator[list[int]]:
    """Every generation-2 collection while the test runs (the number it freed)."""
    seen: list[int] = []

    def noted(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            seen.append(info["collected"])

    gc.callbacks.append(noted)
    yield seen
    gc.callbacks.remove(noted)


async def _wait_until(pilot, condition, what: str) -> None:  # type: ignore[no-untyped-def]
    # The app checks for a pause on a timer: poll for its effect, bounded.
    for _ in range(400):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"never happened: {what}")


def test_the_policy_collects_after_a_pause_and_not_while_keys_come() -> None:
    clock = Clock()
    collector = IdleCollector(idle_after=1.0, busy_budget=NEVER, clock=clock)
    before = gc.get_threshold()
    collector.install()
    try:
        assert gc.get_threshold() == (*before[:2], BACKSTOP)
        collector.input_seen()
        clock.now += 0.5
        assert collector.due() is None  # half a second after a key: not a pause yet
        collector.input_seen()
        clock.now += 0.9
        assert collector.due() is None  # the pause counts from the last key
        clock.now += 0.2
        assert collector.due() == "idle"
        collector.collect("idle")
        assert collector.idle_collections == 1
        clock.now += 60
        assert collector.due() is None  # no key since that collection: nothing to free
    finally:
        collector.restore()
    assert gc.get_threshold() == before


def test_a_busy_collection_gives_way_to_a_key_that_came_meanwhile() -> None:
    clock = Clock()
    collector = IdleCollector(idle_after=1.0, busy_budget=0, clock=clock)
    collector.input_seen()
    assert collector.due() == "busy"  # garbage waits and the keys have not paused
    seen = collector.presses
    collector.input_seen()  # a key arrives before the collection runs
    collector.collect("busy", seen)
    assert collector.busy_collections == 0
    collector.collect("busy", collector.presses)
    assert collector.busy_collections == 1


async def test_the_app_collects_when_the_reviewer_pauses_not_during_keys(
    store: Store, full_collections: list[int]
) -> None:
    before = gc.get_threshold()
    clock = Clock()
    app = review_app(store, order="import")
    app.idle_gc = IdleCollector(idle_after=1.5, busy_budget=NEVER, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        assert gc.get_threshold() == (*before[:2], BACKSTOP)
        full_collections.clear()
        for _ in range(3):
            await pilot.press("1", "1", "a", "l", "escape", "escape", "u")
        assert app.idle_gc.presses == 21
        assert store.decisions()  # the keys did their work
        # The reviewer's clock has not moved: a run of keys, and no full collection in it.
        assert full_collections == []
        assert app.idle_gc.idle_collections == 0
        clock.now += 1.5  # the reviewer stops to read
        await _wait_until(pilot, lambda: app.idle_gc.idle_collections == 1, "idle collection")
        assert len(full_collections) == 1
        await pilot.press("a")  # a key after the collection: none until the next pause
        assert app.idle_gc.idle_collections == 1 and len(full_collections) == 1
        clock.now += 1.5
        await _wait_until(pilot, lambda: app.idle_gc.idle_collections == 2, "second pause")
    assert gc.get_threshold() == before  # the process's thresholds, given back on exit


async def test_the_app_collects_between_keys_when_they_never_pause(
    store: Store, full_collections: list[int]
) -> None:
    app = review_app(store, order="import")
    app.idle_gc = IdleCollector(idle_after=1.5, busy_budget=0, clock=Clock())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a")
        # Without a pause, garbage over the budget is collected once the screen is drawn.
        await _wait_until(pilot, lambda: app.idle_gc.busy_collections >= 1, "busy collection")
        assert full_collections
        assert app.idle_gc.idle_collections == 0


@pytest.mark.parametrize("width", [120, 80])
async def test_the_first_queue_open_lays_its_rows_out_once(store: Store, width: int) -> None:
    app = review_app(store, order="import")
    async with app.run_test(size=(width, 40)) as pilot:
        await pilot.press("l")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, QueueScreen)
        table = screen.query_one(QueueTable)
        # Laid out for the table's own size from the start, not the terminal's first.
        assert screen.row_layouts == 1
        assert table.row_count == table.rows_that_fit() > 0
        assert sum(screen.widths) <= table.size.width
        await pilot.press("escape", "escape", "l")
        await pilot.pause()
        assert screen.row_layouts == 1  # the same page again: cells updated, not re-added
