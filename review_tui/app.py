"""The review app: thin; screens live in their own modules, styles in review.tcss."""

from __future__ import annotations

import gc
from pathlib import Path

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.message import Message

from coder import review
from coder.review import FilterError, parse_filter
from review_tui.adjudication_screen import AdjudicationScreen
from review_tui.commands import ReviewCommands
from review_tui.help_screen import HelpScreen
from review_tui.idle_gc import IdleCollector
from review_tui.queue_screen import QueueScreen
from review_tui.retrain import Retrainer
from review_tui.review_screen import ReviewScreen
from review_tui.session import ReviewSession

#: Seconds between checks for a pause in the reviewer's keys (see idle_gc.py).
IDLE_CHECK_EVERY = 0.25


class IndexReady(Message):
    """The queue index finished building in its worker thread."""


class ReviewApp(App[None]):
    """``coder review``: check the model's proposals one response at a time."""

    CSS_PATH = "review.tcss"
    TITLE = "coder review"
    COMMANDS = App.COMMANDS | {ReviewCommands}
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [Binding("ctrl+p", "command_palette", "Commands", show=False, id="app.palette")]

    def __init__(
        self,
        session: ReviewSession,
        *,
        adjudicate: tuple[str, str] | None = None,
        retrain_every: int = 0,
        keymap: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.session = session
        if keymap:
            # Binding ids (e.g. 'review.accept': 'a,enter,y') -> keys; see the help screen.
            self.set_keymap(keymap)
        self.adjudicate_pair = adjudicate
        self.retrainer = Retrainer.create(session, retrain_every) if retrain_every else None
        self.idle_gc = IdleCollector()

    def on_mount(self) -> None:
        # The queue index is ~10^5 long-lived objects: keep the cyclic garbage collector
        # from rescanning them on every full collection.
        gc.freeze()
        # Full collections run when the reviewer pauses, not inside a key (idle_gc.py).
        self.idle_gc.install()
        self.set_interval(IDLE_CHECK_EVERY, self._collect_garbage)
        self.push_screen(ReviewScreen(self.session))
        if self.adjudicate_pair:
            self.open_adjudication()
        if not self.session.index_ready:
            # After the first item is drawn, so the build does not hold up that frame.
            self.call_after_refresh(self.session.start_index_build, self._index_built)

    def _collect_garbage(self) -> None:
        kind = self.idle_gc.due()
        if kind == "idle":
            self.idle_gc.collect(kind)
        elif kind == "busy":
            # Keys keep coming: once the screen has drawn what it has, not before.
            self.screen.call_after_refresh(self.idle_gc.collect, kind, self.idle_gc.presses)

    def _index_built(self) -> None:
        self.post_message(IndexReady())  # from the worker thread: post_message is thread-safe

    def on_index_ready(self, _message: IndexReady) -> None:
        self.session.wait_for_index()
        gc.freeze()  # the index built in the worker is long-lived too (see on_mount)
        self.redraw()  # the status bar's position and the footer's keys need the index
        # After that frame: split the queue by question now rather than in the first
        # question filter (tens of ms at 100k answers, once per order).
        self.call_after_refresh(self.session.group_by_question)

    def on_unmount(self) -> None:
        # The threshold is the process's: give it back (tests run many apps in one process).
        self.idle_gc.restore()

    def on_key(self, event: events.Key) -> None:
        # Keys typed in one burst (a browser through `coder serve` sends them so) are all
        # queued to the widget focused when they arrived, and a screen's bindings run only
        # when a key bubbles up here: so the keys after the one that opened the review
        # screen's question bar arrive here unhandled. Hand them to the bar (before the
        # app's own bindings, which prevent_default skips).
        screen = self.screen
        if isinstance(screen, ReviewScreen) and screen.ask_bar.asking:
            event.prevent_default()
            screen.ask_bar.take_key(event)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown) and not event.is_forwarded:
            # Counted once: a key reaches the app from the terminal, then bubbling back.
            self.idle_gc.input_seen()
        if isinstance(event, events.Key | events.MouseDown) and not self.session.index_ready:
            # A key pressed before the index is built waits for it (at most the rest of the
            # build), then acts on the whole queue exactly as it would have later.
            self.session.wait_for_index()
            self.redraw()
        await super().on_event(event)

    # --- called by screens and commands ----------------------------------------------
    def after_decision(self) -> None:
        """Hook after each committed decision (the active-learning retrain counter)."""
        if self.retrainer is not None:
            self.retrainer.decision_made(self)

    def review_screen(self) -> ReviewScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, ReviewScreen):
                return screen
        return None

    def redraw(self) -> None:
        screen = self.review_screen()
        if screen is not None:
            screen.show_item(force=True)

    def open_queue(self) -> None:
        self.session._leave()
        # Installed once: building the table screen costs more than refilling it.
        if not self.is_screen_installed("queue"):
            self.install_screen(QueueScreen(self.session), "queue")
        queue = self.get_screen("queue")
        assert isinstance(queue, QueueScreen)
        queue.opening = True
        # No redraw on return: the review screen's resume redraws what changed, once.
        self.push_screen("queue")

    def open_adjudication(self) -> None:
        if self.session.blind:
            self.notify("Adjudication is not available in a blind review.", severity="warning")
            return
        first, second = self.adjudicate_pair or (None, None)
        self.push_screen(AdjudicationScreen(self.session, first, second))

    def open_help(self) -> None:
        self.push_screen(
            HelpScreen(
                [
                    ("Review", list(ReviewScreen.BINDINGS)),
                    ("Queue", list(QueueScreen.BINDINGS)),
                    ("Adjudication", list(AdjudicationScreen.BINDINGS)),
                    (
                        "Everywhere",
                        [
                            Binding("ctrl+p", "", "Command palette", key_display="Ctrl+P"),
                            Binding("down", "", "Page the response text", key_display="↑↓ PgDn"),
                        ],
                    ),
                ]
            )
        )

    def apply_filter(self, text: str) -> None:
        try:
            queue_filter = parse_filter(text)
        except FilterError as error:  # a typo: say so, keep the filter in force
            self.notify(str(error), severity="error", timeout=8)
            return
        count = self.session.set_filter(queue_filter)
        if isinstance(self.screen, QueueScreen):
            self.screen.apply_filter(text)
        self.notify(f"{count:,} item(s) match '{text or 'everything'}'.")
        self.redraw()

    def set_order(self, order: str) -> None:
        self.session.set_order(order)
        self.redraw()

    def go_to(self, response_id: str) -> None:
        if not self.session.go_to(response_id):
            self.notify(f"No response {response_id!r}.", severity="error")
        while isinstance(self.screen, QueueScreen | AdjudicationScreen):
            self.pop_screen()
        self.redraw()

    def switch_reviewer(self, name: str) -> None:
        self.session.switch_reviewer(name)
        self.notify(f"Now reviewing as {name}.")
        self.redraw()

    def export_labels(self) -> None:
        path = Path(str(self.session.store.path) + ".labels.jsonl")
        count = review.export_labels(self.session.store, str(path))
        self.notify(f"Exported {count:,} labelled response(s) to {path}.")

    async def action_quit(self) -> None:
        self.session.close()
        self.exit()
