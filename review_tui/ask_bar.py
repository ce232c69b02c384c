"""A question asked inside the review screen: one key per choice, or a line of text.

The review screen's hot keys (correct with a reason, stance, exclusion reason, note) used
to open modal screens. A screen switch restyles and repaints the whole terminal (the
dimmed background, the footer rebuilt on return): 50-150 ms at 100k answers. This bar is
docked under the panes and only shown or hidden, so asking costs one small layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Input, Static

Answered = Callable[[str | None], None]


@dataclass(frozen=True)
class Choice:
    """One answer of a key-per-choice question."""

    key: str
    value: str
    label: str


class AskBar(Vertical, can_focus=True):
    """Asks one question at a time; the answer (None: skipped or cancelled) goes to a callback.

    While it asks, it holds the focus and keeps every key from the review screen, as the
    modal screens it replaces did.
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 (Textual's name)
        super().__init__(id=id)
        self.choices: dict[str, str] = {}
        self.cancel_keys: tuple[str, ...] = ()
        self.enter = False
        self.on_enter: str | None = None
        self.answered: Answered | None = None
        self.focus_before: Widget | None = None

    def compose(self) -> ComposeResult:
        yield Static(classes="dialog-title", id="ask-title")
        yield Static(id="ask-body")
        yield Input(id="ask-input")
        yield Static(classes="dialog-keys", id="ask-keys")

    def on_mount(self) -> None:
        self.display = False

    @property
    def asking(self) -> bool:
        return self.answered is not None

    def ask_choice(
        self,
        title: str,
        choices: list[Choice],
        answered: Answered,
        *,
        enter: bool = False,
        on_enter: str | None = None,
        current: str | None = None,
        keys_line: str = "[b]Esc[/b] cancel",
        cancel_keys: tuple[str, ...] = ("escape",),
    ) -> None:
        """Ask for one of ``choices`` by its key; with ``enter``, Enter answers ``on_enter``."""
        self.choices = {choice.key: choice.value for choice in choices}
        self.cancel_keys = cancel_keys
        self.enter, self.on_enter = enter, on_enter
        lines = []
        for choice in choices:
            marker = ""
            if enter and choice.value == on_enter:
                marker = " ◀ Enter"
            elif current is not None and choice.value == current:
                marker = "  ◀ current"
            lines.append(f"  [b]{choice.key}[/b]  {choice.label}{marker}")
        self._open(title, "\n".join(lines), keys_line, answered, text=False)

    def ask_text(
        self, title: str, answered: Answered, *, placeholder: str = "", hint: str = ""
    ) -> None:
        """Ask for a line of text: Enter answers it, Escape answers None."""
        field = self.query_one("#ask-input", Input)
        field.value = ""
        field.placeholder = placeholder
        self.choices = {}
        self.cancel_keys = ("escape",)
        self._open(title, hint, "[b]Enter[/b] save    [b]Esc[/b] cancel", answered, text=True)

    def _open(self, title: str, body: str, keys: str, answered: Answered, *, text: bool) -> None:
        self.answered = answered
        self.focus_before = self.screen.focused
        self.query_one("#ask-title", Static).update(title)
        body_widget = self.query_one("#ask-body", Static)
        body_widget.update(body)
        body_widget.display = bool(body)
        body_widget.set_class(text, "dialog-hint")
        self.query_one("#ask-keys", Static).update(keys)
        field = self.query_one("#ask-input", Input)
        field.display = text
        self.display = True
        # Focus now, not at the next idle (Widget.focus defers it): keys typed in one burst,
        # as a browser sends them through `coder serve`, must reach the bar, not the screen.
        self.screen.set_focus(field if text else self)

    def _answer(self, value: str | None) -> None:
        answered = self.answered
        self.answered = None
        self.display = False
        if self.focus_before is not None:
            self.screen.set_focus(self.focus_before)
        if answered is not None:
            answered(value)

    # --- keys --------------------------------------------------------------------------
    def on_key(self, event: events.Key) -> None:
        if not self.asking:
            return
        field = self.query_one("#ask-input", Input)
        if field.display and event.key in field._bindings.key_to_bindings:
            return  # typing: the input's own keys (Enter answers, through Input.Submitted)
        # Every other key stops here, so none reaches the review screen's bindings (as
        # under a modal screen) and its footer need not change while a question is open.
        event.stop()
        event.prevent_default()
        key = event.character or ""
        if event.key in self.cancel_keys:
            self._answer(None)
        elif event.key == "enter" and self.enter:
            self._answer(self.on_enter)
        elif key in self.choices:
            self._answer(self.choices[key])

    def take_key(self, event: events.Key) -> None:
        """A key that reached the screen while the bar asks: queued to the widget that had
        the focus before the bar opened (keys typed in one burst). Typed text goes into the
        field; any other key is handled as if the bar had it."""
        field = self.query_one("#ask-input", Input)
        if field.display and event.is_printable and event.character:
            event.stop()
            field.insert_text_at_cursor(event.character)
        elif field.display and event.key == "enter":
            event.stop()
            self._answer(field.value)
        else:
            self.on_key(event)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._answer(event.value)
