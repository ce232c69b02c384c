"""Why the reviewer changed the model's labels: one key per reason code, skippable."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from coder.review import REASON_CODES

# One key per reason; the first letter of each, except 'q' (wrong question).
REASON_KEYS = {
    "w": "wrong_theme",
    "m": "missed_theme",
    "s": "wrong_stance",
    "r": "not_relevant",
    "q": "wrong_question",
    "o": "other",
}


class ReasonScreen(ModalScreen[str | None]):
    """Returns a reason code, the suggested one on Enter, or None (Escape / space: skip)."""

    BINDINGS = [
        *[
            Binding(key, f"choose('{code}')", REASON_CODES[code], id=f"reason.{code}")
            for key, code in REASON_KEYS.items()
        ],
        Binding("enter", "choose_suggested", "Suggested", id="reason.suggested"),
        Binding("escape,space", "skip", "Skip", id="reason.skip"),
    ]

    def __init__(self, suggested: str | None = None) -> None:
        super().__init__()
        self.suggested = suggested

    def compose(self) -> ComposeResult:
        lines = []
        for key, code in REASON_KEYS.items():
            marker = " ◀ Enter" if code == self.suggested else ""
            lines.append(f"  [b]{key}[/b]  {REASON_CODES[code]}{marker}")
        with Vertical(id="reason-dialog", classes="dialog"):
            yield Static("Why change the model's labels?", classes="dialog-title")
            yield Static("\n".join(lines))
            yield Static("[b]Esc[/b] / [b]space[/b] skip", classes="dialog-keys")

    def action_choose(self, code: str) -> None:
        self.dismiss(code)

    def action_choose_suggested(self) -> None:
        self.dismiss(self.suggested)

    def action_skip(self) -> None:
        self.dismiss(None)
