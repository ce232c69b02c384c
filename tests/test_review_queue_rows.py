"""The queue's rows fit the terminal: the answer's text shows at 120 columns (issue 20).

With fixed widths the text column started at column 91 and showed 29 characters at 120
columns, none at 80; themes and text now share what the fixed fields leave."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable

from review_tui.queue import SNIPPET
from review_tui.queue_rows import GAP, ROW_COLUMN, WIDTHS, column_widths, shown_field
from review_tui.queue_screen import QueueScreen
from tests.review_data import build_project, review_app


def _total(widths: tuple[int, ...]) -> int:
    return sum(widths) + len(GAP) * (len(widths) - 1) + 2


def test_a_wide_table_shows_the_whole_snippet_and_themes() -> None:
    assert column_widths(200) == WIDTHS
    assert _total(column_widths(200)) <= 200


def test_at_120_columns_themes_and_text_share_the_rest_and_fit() -> None:
    widths = column_widths(120)
    assert widths[:5] == WIDTHS[:5]
    assert widths[6] >= 35 and 12 <= widths[5] < 30
    assert _total(widths) <= 120


def test_a_narrow_table_keeps_a_readable_minimum() -> None:
    widths = column_widths(60)
    assert widths[5] == 12 and widths[6] == 20
    assert widths[6] <= SNIPPET


async def test_resizing_the_terminal_relays_the_rows(tmp_path: Path) -> None:
    store = build_project(tmp_path / "rows.db", 12)
    app = review_app(store)
    async with app.run_test(size=(200, 30)) as pilot:
        await pilot.press("l")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, QueueScreen)
        assert screen.widths == WIDTHS
        await pilot.resize_terminal(120, 30)
        await pilot.pause()
        assert screen.widths == column_widths(screen.query_one(DataTable).size.width)
        assert screen.widths[6] < SNIPPET
        table = screen.query_one(DataTable)
        first = table.coordinate_to_cell_key((0, 0)).row_key
        text = shown_field(table.get_cell(first, ROW_COLUMN), "text", screen.widths)
        assert text and len(text) <= screen.widths[6]
