"""Active learning hook: retrain the embedded classifier every N decisions, in a worker.

The training function lives in the core (``coder.embedded.retrain``); this module only
counts decisions, runs it off the UI thread and reorders the queue by the new
uncertainty (least confident first) when it finishes. Any function with the same
signature can be given instead (the tests give a fake one).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from coder import review
from review_tui.session import ReviewSession

if TYPE_CHECKING:
    from review_tui.app import ReviewApp


def core_retrain_function() -> Callable[..., Any]:
    """The core's retrain function (imported when first needed: it loads the encoder)."""
    from coder.embedded.retrain import retrain_and_repropose

    return retrain_and_repropose


class Retrainer:
    """Counts decisions and starts a retrain every ``every`` of them."""

    def __init__(self, session: ReviewSession, every: int, function: Callable[..., Any]) -> None:
        self.session = session
        self.every = every
        self.function = function
        self.count = 0
        self.running = False

    @classmethod
    def create(
        cls, session: ReviewSession, every: int, function: Callable[..., Any] | None = None
    ) -> Retrainer:
        return cls(session, every, function or core_retrain_function())

    def decision_made(self, app: ReviewApp) -> None:
        self.count += 1
        if self.count % self.every == 0 and not self.running:
            self.running = True
            app.notify("Retraining on your decisions…")
            app.run_worker(lambda: self._retrain(app), thread=True, exclusive=True, group="retrain")

    def _retrain(self, app: ReviewApp) -> None:
        from coder.store import Store

        try:
            # A worker thread needs its own connection (sqlite3 objects are per thread).
            with Store(self.session.store.path) as store:
                self.function(store)
        except Exception as error:  # a failed retrain must not stop the review
            app.call_from_thread(app.notify, f"Retrain failed: {error}", severity="error")
            self.running = False
            return
        app.call_from_thread(self._reorder, app)

    def _reorder(self, app: ReviewApp) -> None:
        self.running = False
        session = self.session
        session.index.load()
        gc.freeze()
        session.reorder(review.order_entries(session.index.entries, "confidence"))
        session.recount()
        app.notify("Model retrained; queue reordered by uncertainty.")
        app.redraw()
