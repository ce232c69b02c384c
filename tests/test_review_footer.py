"""The key footer: one widget that repaints the working keys; a click presses a key."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from coder.store import Store
from review_tui.footer import KeyFooter
from review_tui.queue_rows import ROW_COLUMN, shown_field
from review_tui.queue_screen import QueueScreen
from review_tui.review_screen import ReviewScreen
from tests.review_data import APP_SIZE, review_app, screen_text, small_project

SIZE = APP_SIZE


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return small_project(tmp_path / "footer.db")


async def test_footer_repaints_the_working_keys_without_mounting(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        footer = app.screen.query_one(KeyFooter)
        # Nothing to undo yet: the key is hidden (check_action), the others are shown.
        assert "u" not in footer.keys_shown
        assert {"a/⏎", "k", "l", "^p"} <= set(footer.keys_shown)
        assert footer.keys_shown[-1] == "^p"  # the palette key sits on the right
        await pilot.press("a")
        await pilot.pause()
        assert "u" in footer.keys_shown
        assert app.screen.query_one(KeyFooter) is footer  # the same widget, repainted
        assert not footer.children  # one widget: no key widgets to mount
        last_line = screen_text(app).splitlines()[-1]
        assert "u Undo" in last_line and last_line.rstrip().endswith("^p Commands")


async def test_clicking_a_footer_key_presses_it(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("a")
        await pilot.pause()
        footer = app.screen.query_one(KeyFooter)
        x = footer.x_of("u")
        assert x is not None
        assert footer.entry_at(x) is not None
        await pilot.click(KeyFooter, offset=(x + 1, 0))
        await pilot.pause()
        assert [d.action for d in store.decisions()] == ["accept", "undo"]
        # Hovering over a key shows its tooltip; a click between keys does nothing.
        await pilot.hover(KeyFooter, offset=(footer.x_of("l") or 0, 0))
        assert footer.tooltip == "Queue: list, sort, filter, bulk accept"
        gap = (footer.x_of("a/⏎") or 0) - 1  # the space after "l Queue"
        assert gap > 0 and footer.entry_at(gap) is None
        await pilot.click(KeyFooter, offset=(gap, 0))
        await pilot.pause()
        assert isinstance(app.screen, ReviewScreen)
        await pilot.click(KeyFooter, offset=(footer.x_of("l") or 0, 0))
        await pilot.pause()
        assert isinstance(app.screen, QueueScreen)


async def test_queue_filter_keeps_one_footer(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        await pilot.pause()
        footer = app.screen.query_one(KeyFooter)
        await pilot.press(*"question:H1", "enter")
        await pilot.pause()
        assert isinstance(app.focused, DataTable)
        assert app.screen.query_one(KeyFooter) is footer and not footer.children
        assert {"/", "esc", "=", "^p"} <= set(footer.keys_shown)


async def test_queue_rows_show_answers_as_plain_text_not_markup(tmp_path: Path) -> None:
    from schemas import Response
    from tests.review_data import build_project as build
    from tests.review_data import small_codebook

    store = build(tmp_path / "markup.db", 2, codebook=small_codebook())
    store.add_responses(
        [Response(id="m1", text="[link=http://x]click[/link] [/b] [bold]loud", question="H1")]
    )
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l", *"question:H1", "enter")
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        line = table.get_cell("m1", ROW_COLUMN)
        assert isinstance(app.screen, QueueScreen)
        widths = app.screen.widths
        assert shown_field(line, "text", widths).startswith("[link=http://x]click[/link] [/b]")
        assert not any("link" in str(span.style) for span in line.spans)
        assert "[link=http://x]click" in screen_text(app)
