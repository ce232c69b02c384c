"""The help screen: every key of every screen, generated from the bindings."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import Static

#: Names Textual's own formatting leaves lower-case or spelled out.
_KEY_NAMES = {
    "enter": "Enter",
    "escape": "Esc",
    "space": "Space",
    "tab": "Tab",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "home": "Home",
    "end": "End",
    "delete": "Del",
    "backspace": "Backspace",
}


def key_name(key: str) -> str:
    """How a key looks on the keyboard: '.' not 'full_stop', 'Ctrl+Z' not 'ctrl+z'."""
    *modifiers, base = key.strip().split("+")
    if base in _KEY_NAMES:
        name = _KEY_NAMES[base]
    elif len(base) > 1 and base[0] == "f" and base[1:].isdigit():
        name = base.upper()  # F1
    else:
        name = format_key(base)  # 'comma' -> ',', 'left' -> '←'
        if modifiers and len(name) == 1:
            name = name.upper()  # Ctrl+Z, as printed on the key
    return "+".join([*(modifier.capitalize() for modifier in modifiers), name])


def _key_display(binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    return " ".join(key_name(key) for key in binding.key.split(","))


def bindings_table(title: str, bindings: list[BindingType]) -> Table:
    table = Table(
        title=Text(title, style="bold"), show_header=False, box=None, expand=True, padding=(0, 1)
    )
    table.add_column("key", style="bold cyan", no_wrap=True, width=9)
    table.add_column("action")
    seen: set[str] = set()
    for binding in bindings:
        if not isinstance(binding, Binding) or not binding.description:
            continue
        if not binding.show and not binding.tooltip:
            continue  # e.g. theme keys 2-0, covered by the '1-0' row
        if binding.description in seen:
            continue
        seen.add(binding.description)
        table.add_row(_key_display(binding), binding.tooltip or binding.description)
    return table


class HelpScreen(ModalScreen[None]):
    """Lists every key, screen by screen. Any of ? / Esc / q closes it."""

    BINDINGS = [Binding("escape,question_mark,q,f1", "dismiss_help", "Close", id="help.close")]

    def __init__(self, sections: list[tuple[str, list[BindingType]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        # Two columns so every key fits on a 120x40 terminal without scrolling.
        first, *rest = self.sections
        with VerticalScroll(id="help-dialog", classes="dialog"):
            yield Static("Keys", classes="dialog-title")
            with Horizontal(id="help-columns"):
                with Vertical(classes="help-column"):
                    yield Static(bindings_table(*first), classes="help-section")
                with Vertical(classes="help-column"):
                    for title, bindings in rest:
                        yield Static(bindings_table(title, bindings), classes="help-section")
            yield Static(
                "Decisions are saved the moment you make them; quitting loses nothing.\n"
                "Ctrl+P opens the command palette: jump to a response by id or text, filter,\n"
                "switch reviewer, adjudicate, export.",
                classes="dialog-hint",
            )

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
