"""Pickers: a theme picker with type-to-filter, and a one-key-per-choice picker."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from schemas import Theme

CHOICE_KEYS = "1234567890abcdefghijklmnopqrstuvwxyz"


class ThemePicker(ModalScreen[str | None]):
    """Type to filter the themes; Enter toggles the highlighted one; Escape closes."""

    BINDINGS = [
        Binding("escape", "cancel", "Close", id="picker.cancel"),
        Binding("down", "move(1)", "Down", show=False),
        Binding("up", "move(-1)", "Up", show=False),
    ]

    def __init__(self, themes: list[Theme], applied: set[str]) -> None:
        super().__init__()
        self.themes = themes
        self.applied = applied

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-dialog", classes="dialog"):
            yield Static("Toggle a theme", classes="dialog-title")
            yield Input(placeholder="type to filter by name, id or definition", id="picker-input")
            yield OptionList(id="picker-options")
            yield Static(
                "[b]Enter[/b] toggle    [b]↑↓[/b] move    [b]Esc[/b] close", classes="dialog-keys"
            )

    def on_mount(self) -> None:
        self._fill("")

    def _fill(self, query: str) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        words = query.lower().split()
        for theme in self.themes:
            haystack = f"{theme.label} {theme.id} {theme.definition}".lower()
            if all(word in haystack for word in words):
                mark = "■" if theme.id in self.applied else "□"
                options.add_option(
                    Option(f"{mark} {theme.label}  [dim]{theme.id}[/dim]", id=theme.id)
                )
        if options.option_count:
            options.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def action_move(self, delta: int) -> None:
        options = self.query_one(OptionList)
        if options.option_count:
            current = options.highlighted or 0
            options.highlighted = max(0, min(options.option_count - 1, current + delta))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        options = self.query_one(OptionList)
        if options.highlighted is not None and options.option_count:
            self.dismiss(options.get_option_at_index(options.highlighted).id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoicePicker(ModalScreen[str | None]):
    """One key per choice (1-9, 0, then letters); Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="choice.cancel")]

    def __init__(self, title: str, choices: list[tuple[str, str]], current: str | None) -> None:
        super().__init__()
        self.title_text = title
        self.choices = choices[: len(CHOICE_KEYS)]
        self.current = current

    def compose(self) -> ComposeResult:
        lines = []
        for key, (value, label) in zip(CHOICE_KEYS, self.choices, strict=False):
            marker = "  ◀ current" if value == self.current else ""
            lines.append(f"  [b]{key}[/b]  {label}{marker}")
        with Vertical(id="choice-dialog", classes="dialog"):
            yield Static(self.title_text, classes="dialog-title")
            yield Static("\n".join(lines), id="choice-list")
            yield Static("[b]Esc[/b] cancel", classes="dialog-keys")

    def on_key(self, event) -> None:  # type: ignore[no-untyped-def]
        key = event.character or ""
        if len(key) == 1 and key in CHOICE_KEYS:
            index = CHOICE_KEYS.index(key)
            if index < len(self.choices):
                event.stop()
                self.dismiss(self.choices[index][0])

    def action_cancel(self) -> None:
        self.dismiss(None)
