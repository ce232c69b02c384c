"""The footer of the review, queue and adjudication screens: the working keys in one line.

Textual's Footer is a container of one widget per key, removed and mounted again whenever
a screen's bindings are refreshed with a different set of keys (applying a queue filter
moves focus from the filter box to the table, which shows other keys): ~20 widgets styled
and laid out again, 20-40 ms of a key press at 100k answers. This footer is ONE widget of a
fixed size that renders the same keys, in the same order and style (Textual's
`footer-key--*` colours, compact spacing, the command palette key on the right), as one
line of Rich text: a change of keys is a repaint of one line, never a mount or a layout.
A click maps its x offset to the key drawn there; hovering shows that key's tooltip.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget


@dataclass(frozen=True)
class FooterEntry:
    """One key as shown: what it does, how it is drawn, where it sits on the line."""

    key: str
    key_display: str
    description: str
    enabled: bool
    tooltip: str
    group: str | None = None  # the group's description when grouped keys share a label


Entries = tuple[FooterEntry, ...]


def footer_entries(screen: Screen, palette: str | None) -> tuple[Entries, FooterEntry | None]:  # type: ignore[type-arg]
    """The keys a footer shows for ``screen``: one per action (its first binding), in
    binding order, as Textual's Footer picks them; and the command palette's key."""
    app = screen.app
    by_action: dict[str, tuple[Binding, bool, str]] = {}
    palette_entry = None
    for _, binding, enabled, tooltip in screen.active_bindings.values():
        if palette is not None and binding.key == palette:
            palette_entry = FooterEntry(
                binding.key,
                app.get_key_display(binding),
                binding.description,
                enabled,
                binding.tooltip or binding.description,
            )
        if binding.show:
            by_action.setdefault(binding.action, (binding, enabled, tooltip))
    entries: list[FooterEntry] = []
    for group, members in groupby(by_action.values(), lambda member: member[0].group):
        shown = list(members)
        grouped = group is not None and len(shown) > 1
        for binding, enabled, tooltip in shown:
            entries.append(
                FooterEntry(
                    binding.key,
                    app.get_key_display(binding),
                    "" if grouped else binding.description,
                    enabled,
                    (tooltip or binding.description) if grouped else tooltip,
                    group.description if grouped and group is not None else None,
                )
            )
    return tuple(entries), palette_entry


class KeyFooter(Widget, can_focus=False):
    """The working keys of the screen, drawn as one line and repainted when they change."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {
        "footer-key--key",
        "footer-key--description",
        "footer-key--hover",
        "footer-key--separator",
    }
    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom;
        height: 1;
        width: 1fr;
        color: $footer-foreground;
        background: $footer-background;
        text-wrap: nowrap;
        & > .footer-key--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        & > .footer-key--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        & > .footer-key--hover {
            color: $footer-key-foreground;
            background: $block-hover-background;
        }
        & > .footer-key--separator {
            color: $foreground 20%;
        }
    }
    """

    def __init__(self, *, compact: bool = False) -> None:
        super().__init__()
        self.compact = compact
        self._entries: Entries = ()
        self._palette: FooterEntry | None = None
        self._spans: list[tuple[int, int, FooterEntry]] = []  # x range of each drawn key
        self._hover: FooterEntry | None = None

    def on_mount(self) -> None:
        # The signal Textual's own Footer listens to: the screen's keys may have changed.
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)
        self.bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def bindings_changed(self, screen: Screen) -> None:  # type: ignore[type-arg]
        """Repaint (no layout: the size is fixed) when the keys shown would change."""
        if not self.is_attached or screen is not self.screen:
            return
        palette = self.app.COMMAND_PALETTE_BINDING if self.app.ENABLE_COMMAND_PALETTE else None
        entries, palette_entry = footer_entries(screen, palette)
        if (entries, palette_entry) != (self._entries, self._palette):
            self._entries, self._palette = entries, palette_entry
            self.refresh()

    @property
    def keys_shown(self) -> list[str]:
        """The keys as drawn on the line (e.g. ``a/⏎``), left to right (the palette last)."""
        return [entry.key_display for entry in self._entries] + (
            [self._palette.key_display] if self._palette else []
        )

    def _styles(self, entry: FooterEntry) -> tuple[Style, Style]:
        key = self.get_component_rich_style("footer-key--key")
        description = self.get_component_rich_style("footer-key--description")
        if entry == self._hover:
            hover = self.get_component_rich_style("footer-key--hover")
            key, description = key + hover, description + hover
        if not entry.enabled:
            key, description = key + Style(dim=True), description + Style(dim=True)
        return key, description

    def _append(self, line: Text, entry: FooterEntry) -> None:
        """One key as Textual's FooterKey draws it, noting its x range for clicks."""
        start = line.cell_len
        key_style, description_style = self._styles(entry)
        line.append(entry.key_display if self.compact else f" {entry.key_display} ", key_style)
        if entry.description:
            text = f" {entry.description}" if self.compact else f"{entry.description} "
            line.append(text, description_style)
        self._spans.append((start, line.cell_len, entry))

    def render(self) -> Text:
        line = Text(no_wrap=True, overflow="crop", end="")
        self._spans = []
        for label, members in groupby(self._entries, lambda entry: entry.group):
            grouped = list(members)
            if label is not None:
                line.append(" ")
            for entry in grouped:
                self._append(line, entry)
                if label is None and self.compact:
                    line.append(" ")  # FooterKey's margin-right in the compact footer
            if label is not None:
                line.append(f" {label} ", self.get_component_rich_style("footer-key--description"))
        if self._palette is not None:
            palette = Text(end="")
            palette.append("▏", self.get_component_rich_style("footer-key--separator"))
            # Docked on the right as in Textual's Footer: keys that do not fit go under it.
            start = max(0, self.size.width - self._palette_width())
            line.truncate(start, pad=True)
            self._spans = [(a, min(b, start), entry) for a, b, entry in self._spans if a < start]
            line.append_text(palette)
            self._append(line, self._palette)
            line.append(" ")  # its margin (compact) or padding on the right
        return line

    def _palette_width(self) -> int:
        assert self._palette is not None
        key = len(self._palette.key_display) + (0 if self.compact else 2)
        description = len(self._palette.description) + 1 if self._palette.description else 0
        return 1 + key + description + 1

    def entry_at(self, x: int) -> FooterEntry | None:
        """The key drawn at column ``x`` of the footer, if any."""
        return next((entry for start, end, entry in self._spans if start <= x < end), None)

    def x_of(self, key_display: str) -> int | None:
        """The first column of the key drawn as ``key_display``, if it is shown."""
        return next(
            (start for start, _, entry in self._spans if entry.key_display == key_display), None
        )

    def on_mouse_down(self, event: events.MouseDown) -> None:
        # Textual's FooterKey acts on mouse down too: a click presses the key.
        entry = self.entry_at(event.x)
        if entry is None:
            return
        event.stop()
        if entry.enabled:
            self.app.simulate_key(entry.key)
        else:
            self.app.bell()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        entry = self.entry_at(event.x)
        if entry != self._hover:
            self._hover = entry
            self.tooltip = entry.tooltip if entry and entry.tooltip else None
            self.refresh()

    def on_leave(self, _event: events.Leave) -> None:
        if self._hover is not None:
            self._hover = None
            self.tooltip = None
            self.refresh()
