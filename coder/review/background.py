"""Building the queue index in a worker thread, while the first item is on screen."""

from __future__ import annotations

import threading
from collections.abc import Callable

from coder.review.index import ReviewIndex
from coder.store import Store


class BackgroundIndex:
    """One build of :class:`ReviewIndex` in a daemon thread, on a connection of its own
    (a SQLite connection belongs to the thread that opened it)."""

    def __init__(self, store: Store, on_ready: Callable[[], None] | None = None) -> None:
        self.store = store
        self._built: ReviewIndex | BaseException | None = None
        path = store.path

        def build() -> None:
            try:
                self._built = ReviewIndex.read(path)
            except BaseException as error:  # re-raised in the caller's thread by result()
                self._built = error
            if on_ready is not None:
                on_ready()

        self._thread = threading.Thread(target=build, name="review-index", daemon=True)
        self._thread.start()

    def result(self) -> ReviewIndex:
        """Wait for the build; the index, caught up with decisions made meanwhile."""
        self._thread.join()
        built = self._built
        if isinstance(built, BaseException):
            raise built
        assert built is not None
        built.attach(self.store)
        return built
