"""The queue table holds one screenful of rows and pages at its edges (issue 20).

At 100,000 answers Textual's DataTable measured every cell of the 200 rows it was given
each time a filter refilled it; the table now gets only the rows it shows, and moving past
its first or last row (or PgUp/PgDn) shows the neighbouring page of the queue.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from coder.review import parse_filter
from coder.store import Store
from review_tui.queue_screen import QueueScreen
from review_tui.queue_table import QueueTable
from review_tui.review_screen import ReviewScreen
from review_tui.session import ReviewSession
from tests.review_data import build_project, review_app, small_codebook

SIZE = (120, 40)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return build_project(tmp_path / "paging.db", 100, codebook=small_codebook())


def shown_ids(screen: QueueScreen) -> list[str]:
    table = screen.query_one(QueueTable)
    return [str(key.value) for key in table.rows]


def highlighted(screen: QueueScreen) -> str:
    table = screen.query_one(QueueTable)
    return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)


async def open_queue_table(pilot) -> QueueScreen:  # type: ignore[no-untyped-def]
    await pilot.press("l", "down")  # the queue, then from the filter box to the table
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, QueueScreen)
    return screen


async def test_the_table_holds_only_the_rows_it_shows(store: Store) -> None:
    app = review_app(store, order="import")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_queue_table(pilot)
        table = screen.query_one(QueueTable)
        fit = table.rows_that_fit()
        assert 10 < fit < 100
        assert table.row_count == fit
        view = [entry.response_id for entry in app.session.view]
        assert shown_ids(screen) == view[:fit]
        info = str(screen.query_one("#queue-info", Static).render())
        assert f"rows 1-{fit} of 100" in info and f"page 1 of {-(-100 // fit)}" in info


async def test_moving_past_the_last_row_shows_the_next_page(store: Store) -> None:
    app = review_app(store, order="import")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_queue_table(pilot)
        fit = screen.query_one(QueueTable).rows_that_fit()
        view = [entry.response_id for entry in app.session.view]
        assert highlighted(screen) == view[0]
        await pilot.press(*["down"] * (fit - 1))
        assert highlighted(screen) == view[fit - 1] and shown_ids(screen) == view[:fit]
        await pilot.press("down")  # past the last row: the next page, its first row
        assert shown_ids(screen) == view[fit : 2 * fit]
        assert highlighted(screen) == view[fit]
        await pilot.press("up")  # back past the first row: the previous page, its last row
        assert shown_ids(screen) == view[:fit]
        assert highlighted(screen) == view[fit - 1]
        await pilot.press("up", *["up"] * fit)  # at the very top nothing moves
        assert highlighted(screen) == view[0]


async def test_page_keys_turn_pages_and_enter_opens_the_row_on_screen(store: Store) -> None:
    app = review_app(store, order="import")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_queue_table(pilot)
        fit = screen.query_one(QueueTable).rows_that_fit()
        view = [entry.response_id for entry in app.session.view]
        await pilot.press("pagedown", "pagedown")
        assert shown_ids(screen) == view[2 * fit : 3 * fit]
        await pilot.press("pageup")
        assert shown_ids(screen) == view[fit : 2 * fit]
        await pilot.press("down", "down", "enter")
        assert isinstance(app.screen, ReviewScreen)
        assert app.session.item is not None
        assert app.session.item.response.id == view[fit + 2]
        assert app.session.position == fit + 2
        # Back in the queue, the page of the item under review is shown again.
        await pilot.press("l", "down")
        assert highlighted(screen) == view[fit + 2]


async def test_a_filter_shows_the_first_page_of_its_answers(store: Store) -> None:
    app = review_app(store, order="import")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l", *"question:H2", "enter")
        screen = app.screen
        assert isinstance(screen, QueueScreen)
        fit = screen.query_one(QueueTable).rows_that_fit()
        h2 = [entry.response_id for entry in app.session.view]
        assert len(h2) == 50 and len(h2) > fit
        assert shown_ids(screen) == h2[:fit]
        await pilot.press("end", "pagedown")
        assert shown_ids(screen) == h2[fit : 2 * fit]


async def test_a_smaller_terminal_gives_smaller_pages_around_the_same_row(store: Store) -> None:
    app = review_app(store, order="import")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_queue_table(pilot)
        view = [entry.response_id for entry in app.session.view]
        await pilot.press(*["down"] * 20)
        assert highlighted(screen) == view[20]
        await pilot.resize_terminal(120, 24)
        await pilot.pause()
        table = screen.query_one(QueueTable)
        fit = table.rows_that_fit()
        assert 0 < fit < 20
        assert table.row_count == fit
        assert highlighted(screen) == view[20]  # the highlighted answer stays in sight
        page = 20 // fit
        assert shown_ids(screen) == view[page * fit : (page + 1) * fit]


def test_go_to_checks_the_position_it_is_given(store: Store) -> None:
    session = ReviewSession(store, "ann", order="import")
    target = session.view[7].response_id
    assert session.go_to(target, position=3)  # a stale position is not trusted
    assert session.position == 7 and session.item is not None
    assert session.item.response.id == target
    assert session.go_to(session.view[9].response_id, position=9)
    assert session.position == 9


def test_a_question_filter_matches_a_scan_of_the_order(store: Store) -> None:
    session = ReviewSession(store, "ann")
    for order in ("confidence", "import"):
        session.set_order(order)
        for question in ("H1", "H2", "H9"):
            session.set_filter(parse_filter(f"question:{question}"))
            scanned = [entry for entry in session.order if entry.question == question]
            assert session.view == scanned
        session.set_filter(parse_filter(""))
        assert session.view == session.order


async def test_the_review_screen_restyles_after_a_theme_change_in_the_queue(
    store: Store,
) -> None:
    """Back from the queue the review screen skips Textual's restyle, unless the theme changed."""
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        before = app.screen.styles.background
        await pilot.press("l")
        app.theme = "textual-light" if app.theme != "textual-light" else "nord"
        await pilot.pause()
        await pilot.press("escape", "escape")
        assert isinstance(app.screen, ReviewScreen)
        assert app.screen.styles.background != before
