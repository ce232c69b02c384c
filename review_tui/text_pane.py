"""A fixed-size text pane that pages through its text.

The review panes show a different amount of text for every item. A widget whose
(virtual) height follows its content makes Textual run a layout pass and repaint the
scrollbars on every item, a second frame after the first. This pane never changes size:
it renders its text to lines once per item and width (Textual's line API) and shows a
window of them, so moving to the next item is one repaint of two widgets. Long text is
paged with the arrow keys, PgUp/PgDn and the mouse wheel; a last-line marker says
there is more.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.strip import Strip
from textual.widget import Widget

MORE_STYLE = Style(color="black", bgcolor="yellow", bold=True)


class TextPane(Widget):
    """Shows rich Texts one below the other, from the top, paged when too long."""

    BINDINGS = [
        Binding("down", "scroll_lines(1)", "Scroll down", show=False),
        Binding("up", "scroll_lines(-1)", "Scroll up", show=False),
        Binding("pagedown,space", "scroll_page(1)", "Page down", show=False),
        Binding("pageup", "scroll_page(-1)", "Page up", show=False),
        Binding("home", "scroll_lines(-1000000)", "Top", show=False),
        Binding("end", "scroll_lines(1000000)", "Bottom", show=False),
    ]

    more_hint = "↓ / PgDn"

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 (Textual's name)
        super().__init__(id=id)
        self._texts: tuple[Text, ...] = ()
        self._lines: list[Strip] | None = None
        self._lines_width = -1
        self.top = 0

    def set_text(self, *texts: Text) -> None:
        """Show these texts from the top (each keeps its own wrapping rule)."""
        self._texts = texts
        self._lines = None
        self.top = 0
        self.refresh()

    @property
    def plain(self) -> str:
        """The text shown (for tests)."""
        return "\n".join(text.plain for text in self._texts)

    # --- rendering ------------------------------------------------------------------
    def lines(self) -> list[Strip]:
        """The texts rendered at the pane's width (cached until the text or width changes)."""
        width = self.content_size.width
        if self._lines is None or width != self._lines_width:
            console = self.app.console
            options = console.options.update_width(max(width, 1))
            lines: list[Strip] = []
            for text in self._texts:
                lines.extend(
                    Strip(line).adjust_cell_length(width)
                    for line in console.render_lines(text, options, pad=False)
                )
            self._lines = lines
            self._lines_width = width
        return self._lines

    def render_line(self, y: int) -> Strip:
        lines = self.lines()
        width, height = self.content_size
        hidden_below = len(lines) - (self.top + height)
        if y == height - 1 and hidden_below > 0:
            label = f" ▼ {hidden_below + 1} more line(s): {self.more_hint} "[:width]
            return Strip([Segment(label.ljust(width), MORE_STYLE)], width).apply_style(
                self.rich_style
            )
        index = self.top + y
        if index >= len(lines):
            return Strip.blank(width, self.rich_style)
        return lines[index].apply_style(self.rich_style)

    # --- paging ------------------------------------------------------------------------
    def _max_top(self) -> int:
        return max(0, len(self.lines()) - self.content_size.height)

    def action_scroll_lines(self, delta: int) -> None:
        top = max(0, min(self._max_top(), self.top + int(delta)))
        if top != self.top:
            self.top = top
            self.refresh()

    def action_scroll_page(self, pages: int) -> None:
        self.action_scroll_lines(int(pages) * max(1, self.content_size.height - 1))

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.action_scroll_lines(3)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.action_scroll_lines(-3)

    def on_resize(self, event: events.Resize) -> None:
        self._lines = None
        self.top = min(self.top, self._max_top())
