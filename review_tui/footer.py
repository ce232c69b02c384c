"""The footer of the review and queue screens: Textual's, rebuilt only when its keys change.

Textual's Footer removes and re-mounts every key widget whenever a screen's bindings are
refreshed (each focus change, each screen resume, each modal shown or closed): about 20
widgets styled and laid out again, the largest cost of most key presses at 100k answers.
This one compares what it would show with what it shows and skips an identical rebuild.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer

Shown = tuple[tuple[object, ...], ...]


class KeyFooter(Footer):
    """A Footer (same look, same keys) that skips rebuilding identical contents."""

    def __init__(self, *, compact: bool = False) -> None:
        super().__init__(compact=compact)
        self._shown: Shown | None = None

    def _contents(self) -> Shown:
        """What compose would show: each shown key, its label, state and tooltip."""
        app = self.app
        palette = app.COMMAND_PALETTE_BINDING if self.show_command_palette else None
        return tuple(
            (binding.key, app.get_key_display(binding), binding.description, binding.action)
            + (binding.group, enabled, tooltip)
            for (_, binding, enabled, tooltip) in self.screen.active_bindings.values()
            if binding.show or binding.key == palette
        )

    def bindings_changed(self, screen: Screen) -> None:  # type: ignore[type-arg]
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self._recompose_if_changed)

    async def _recompose_if_changed(self) -> None:
        if not self.is_attached:
            return
        contents = self._contents()
        if contents == self._shown:
            return
        self._shown = contents
        await self.recompose()
