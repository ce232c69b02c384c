"""A yes/no confirmation (ModalScreen[bool])."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class ConfirmScreen(ModalScreen[bool]):
    """Ask before a change that touches many items; y confirms, n or Escape cancels."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, title: str, message: str | Text) -> None:
        super().__init__()
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Static(self.title_text, classes="dialog-title")
            yield Static(self.message, id="confirm-message")
            yield Static("[b]y[/b] yes    [b]n[/b] / [b]Esc[/b] no", classes="dialog-keys")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
