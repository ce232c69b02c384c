"""The line above the review: who, where, how far."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from review_tui.session import ReviewSession


def render_status(session: ReviewSession) -> Text:
    out = Text(no_wrap=True, overflow="ellipsis")
    out.append(f" {session.reviewer} ", style="bold reverse")
    if session.blind:
        out.append(" BLIND ", style="bold reverse red")
    out.append("  ")
    out.append(session.progress().summary())
    if session.view:
        out.append(f"   item {session.position + 1:,} of {len(session.view):,}", style="dim")
    description = session.queue_filter.describe()
    if description:
        out.append(f"   filter: {description}", style="bold yellow")
    if session.order_name != "confidence":
        out.append(f"   order: {session.order_name}", style="dim")
    return out


class StatusBar(Widget):
    """Progress, position and the filter in force (one line: repaints without a layout)."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 (Textual's name)
        super().__init__(id=id)
        self._text = Text()

    def render(self) -> Text:
        return self._text

    def show(self, session: ReviewSession) -> None:
        self._text = render_status(session)
        self.refresh()
