"""The queue a review session moves over: the index, its order, the view and the position.

At 100,000 responses the index takes about half a second to build, so for a big project
the session starts from its first item alone (:func:`coder.review.deferred_first_item`)
and the app builds the index in a worker thread once that item is drawn. Until then
``view`` and ``order`` are empty; anything that needs them waits for the index
(:meth:`SessionQueue.wait_for_index`), so every key acts on the whole queue.
"""

from __future__ import annotations

from collections.abc import Callable

from coder import review
from coder.review import FirstItem, QueueEntry, QueueFilter, ReviewIndex
from coder.store import Store


class SessionQueue:
    """The queue part of :class:`review_tui.session.ReviewSession`."""

    store: Store
    reviewer: str
    order_name: str
    queue_filter: QueueFilter
    _index: ReviewIndex | None = None  # set by _start_queue; read before it by leases
    _first: QueueEntry | None = None  # the first item, until the index is installed

    def _start_queue(self, first: FirstItem | None) -> None:
        """Start from ``first`` (the index comes later), or build the index now (None)."""
        self._positions: dict[str, int] | None = None
        self._index: ReviewIndex | None = None
        self._first: QueueEntry | None = None
        self._builder: review.BackgroundIndex | None = None
        self.order: list[QueueEntry] = []
        self.view: list[QueueEntry] = []
        self._grouped_order: list[QueueEntry] | None = None  # the order _by_question splits
        self._by_question: dict[str | None, list[QueueEntry]] = {}
        self.position = 0
        if first is None:
            self._install(ReviewIndex(self.store))
        else:
            self._first = first.entry
            self._progress = first.progress

    @property
    def index(self) -> ReviewIndex:
        """The queue index (waits for the worker building it, if it is not ready)."""
        if self._index is None:
            self.wait_for_index()
        assert self._index is not None
        return self._index

    @property
    def index_ready(self) -> bool:
        return self._index is not None

    def start_index_build(self, on_ready: Callable[[], None] | None = None) -> None:
        """Build the index in a worker thread; ``on_ready`` is called from that thread
        when done. Does nothing if the index is ready or being built."""
        if self._index is None and self._builder is None:
            self._builder = review.BackgroundIndex(self.store, on_ready)

    def wait_for_index(self) -> None:
        """Make the index ready: wait for the worker, or build it here if none was started."""
        if self._index is not None:
            return
        builder, self._builder = self._builder, None
        self._install(builder.result() if builder else ReviewIndex(self.store))
        if self._first is not None:
            # The first item stays on screen, now at its place in the whole queue.
            self.position = self.position_of(self._first.response_id) or 0
            self._first = None

    def _install(self, index: ReviewIndex) -> None:
        self._index = index
        self.order = review.order_entries(index.entries, self.order_name)
        self.view = self.order
        if self.queue_filter.question:  # a question filter the session started with
            self.view = review.filter_entries(index, self.order, self.queue_filter, self.reviewer)
        self._positions = None
        self._progress = review.progress(index, self.reviewer)

    @property
    def entry(self) -> QueueEntry | None:
        if self._index is None:
            return self._first
        if not self.view:
            return None
        return self.view[self.position]

    def order_to_filter(self, question: str | None) -> list[QueueEntry]:
        """The order, or its entries for ``question`` only (split once per order).

        A question filter is the usual one; picking its entries out of 100,000 took
        20-40 ms each time, a dict lookup once the order is split by question."""
        if not question:
            return self.order
        self.group_by_question()
        return self._by_question.get(question, [])

    def group_by_question(self) -> None:
        """Split the order by question, unless it already is (~60 ms at 100k answers: the
        app does it once the index is ready, so the first question filter does not)."""
        if self._grouped_order is not self.order:  # a new order (sort, retrain, index)
            groups: dict[str | None, list[QueueEntry]] = {}
            for entry in self.order:
                groups.setdefault(entry.question, []).append(entry)
            self._by_question, self._grouped_order = groups, self.order

    def position_of(self, response_id: str) -> int | None:
        """Where a response is in the current view (a dict built once per view)."""
        self.wait_for_index()
        if self._positions is None:
            self._positions = {entry.response_id: n for n, entry in enumerate(self.view)}
        return self._positions.get(response_id)
