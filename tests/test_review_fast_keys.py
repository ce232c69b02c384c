"""The hot keys' fast paths (issue 20) keep the behaviour of the screens they replace."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from coder.store import Store
from review_tui.ask_bar import AskBar
from review_tui.queue_rows import ROW_COLUMN, shown_field
from review_tui.queue_screen import QueueScreen
from review_tui.review_screen import ReviewScreen
from tests.review_data import APP_SIZE, review_app, small_project

SIZE = APP_SIZE


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return small_project(tmp_path / "review.db")


async def test_a_cancelled_note_writes_nothing_and_gives_the_keys_back(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        first = app.session.item.response.id if app.session.item else None
        await pilot.press("n", *"abandon", "tab", "ctrl+z", "escape")
        bar = app.screen.query_one(AskBar)
        assert not bar.asking and not bar.display
        assert store.decisions() == []  # neither the note nor an undo/queue from tab, ctrl+z
        assert isinstance(app.screen, ReviewScreen)
        await pilot.press("a")  # the review keys work again
        assert [(d.response_id, d.action) for d in store.decisions()] == [(first, "accept")]


async def test_the_stance_is_picked_in_the_bar(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        codebook = app.session.codebook
        assert codebook.stance is not None
        values = [value.id for value in codebook.stance.values]
        await pilot.press("s")
        assert app.screen.query_one(AskBar).asking
        await pilot.press("q")  # not a choice: nothing happens, the app does not quit
        assert app.screen.query_one(AskBar).asking
        key = "2" if app.session.draft.stance == values[0] else "1"
        await pilot.press(key)
        assert app.session.draft.stance == values["12".index(key)]
        assert not app.screen.query_one(AskBar).asking


async def test_the_queue_shows_a_decision_made_since_it_was_last_open(store: Store) -> None:
    app = review_app(store, order="import")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l", "escape", "escape")  # the table is filled once
        first = app.session.item.response.id if app.session.item else ""
        await pilot.press("a", "l")
        assert isinstance(app.screen, QueueScreen)
        table = app.screen.query_one(DataTable)
        assert shown_field(table.get_cell(first, ROW_COLUMN), "status") == "accepted"


async def test_the_queue_restyles_after_a_theme_change(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        before = app.screen.query_one(DataTable).styles.background
        await pilot.press("escape", "escape")
        app.theme = "textual-light" if app.theme != "textual-light" else "nord"
        await pilot.pause()
        await pilot.press("l")
        assert app.screen.query_one(DataTable).styles.background != before


async def test_opening_the_queue_again_skips_the_restyle(store: Store) -> None:
    """The queue screen is installed once; shown again with the same theme, it asks Textual
    not to restyle every node (the cost of opening it at 100k answers)."""
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        queue = app.screen
        assert isinstance(queue, QueueScreen)
        restyles: list[bool] = []
        original = queue.update_node_styles

        def counted(animate: bool = True) -> None:
            restyles.append(animate)
            original(animate=animate)

        queue.update_node_styles = counted  # type: ignore[method-assign]
        await pilot.press("escape", "escape", "l")
        assert app.screen is queue
        assert restyles == []
        await pilot.press("escape", "escape")
        app.theme = "textual-light" if app.theme != "textual-light" else "nord"
        await pilot.press("l")
        assert restyles, "a theme change restyles the queue when it is shown again"


async def test_keys_typed_in_one_burst_reach_the_question_bar(store: Store) -> None:
    """A browser (coder serve) sends keys faster than the app handles them: all are queued
    to the widget focused when they arrive, so the reason key after the one that opened the
    bar, and a note typed straight after `n`, must still reach the bar."""
    from textual import events

    app = review_app(store, order="import")
    async with app.run_test(size=SIZE) as pilot:
        for key in ("1", "a", "s"):  # 's' is also the stance key: here it is the reason
            app.post_message(events.Key(key, key))
        await pilot.pause()
        for key, character in [("n", "n"), ("h", "h"), ("i", "i"), ("enter", None)]:
            app.post_message(events.Key(key, character))
        await pilot.pause()
        decisions = [(d.action, d.reason_code, d.note) for d in store.decisions()]
        assert decisions == [("correct", "wrong_stance", None), ("note", None, "hi")]
        assert not app.screen.query_one(AskBar).asking
