"""The queue table: one screenful of the queue; moving past either end turns the page.

Textual's DataTable measures every cell of every row it is given, so a table of 200 rows
cost about 150 ms each time a filter refilled it at 100,000 answers. The queue screen
therefore gives it only the rows it can show (a page is a screenful), and this table asks
for the next or previous page when the cursor moves past its last or first row, or on
PgDn/PgUp, so moving through the queue feels like one long list.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.message import Message
from textual.widgets import DataTable


class QueueTable(DataTable[str | Text]):
    """A DataTable whose arrows and PgUp/PgDn page through the queue at its edges."""

    class PageRequested(Message):
        """Show the page ``delta`` away: its first row (going down) or last row (going up),
        or, for PgUp/PgDn (``keep_row``), the row where the cursor is now."""

        def __init__(self, delta: int, keep_row: bool = False) -> None:
            super().__init__()
            self.delta = delta
            self.keep_row = keep_row

    class Resized(Message):
        """The table's height changed, so a page holds a different number of rows."""

    def rows_that_fit(self) -> int:
        """How many rows the table shows without scrolling (0 before its first layout)."""
        header = self.header_height if self.show_header else 0
        # Reckoned from the columns, not from whether Textual shows the scrollbar now: a
        # page must not change size with its texts (the queue fixes every column's width).
        width = sum(column.get_render_width(self) for column in self.columns.values())
        scrollbar = self.styles.scrollbar_size_horizontal if width > self.size.width else 0
        return max(0, self.size.height - header - scrollbar)

    def action_cursor_down(self) -> None:
        """Down; from the last row, the first row of the next page."""
        if self.row_count and self.cursor_row >= self.row_count - 1:
            self.post_message(self.PageRequested(+1))
        else:
            super().action_cursor_down()

    def action_cursor_up(self) -> None:
        """Up; from the first row, the last row of the previous page."""
        if self.row_count and self.cursor_row <= 0:
            self.post_message(self.PageRequested(-1))
        else:
            super().action_cursor_up()

    def action_page_down(self) -> None:
        """The next page (a page is what the table shows)."""
        self.post_message(self.PageRequested(+1, keep_row=True))

    def action_page_up(self) -> None:
        """The previous page."""
        self.post_message(self.PageRequested(-1, keep_row=True))

    def on_resize(self, _event: events.Resize) -> None:
        # Resize does not bubble: tell the screen, which chooses the page size.
        self.post_message(self.Resized())
