"""Full garbage collections when the reviewer pauses, not while a key is handled.

Every line Textual draws is a ``Strip`` with a handful of small caches that refer back to
it, so the screen leaves behind cyclic garbage, about 1,000 objects per key press. Only
a full (generation 2) collection frees it, and Python starts one in the middle of
whatever allocates next: at 100,000 answers a key press now and then paid for it, 10-40 ms
with the default thresholds, and 150 ms for 10^5 such objects with the gen-2 threshold
raised tenfold (measured with ``gc.callbacks`` in benchmarks/bench_review.py).

So while the app runs, automatic full collections are put off far (``BACKSTOP``) and
:class:`IdleCollector` runs them itself:

- when the reviewer pauses (no key or click for ``idle_after`` seconds: reading an
  answer takes longer), from a timer, so the garbage of those keys is freed while no
  one waits;
- when keys keep coming without a pause, once ``busy_budget`` younger collections have
  passed since the last full one (every 20-30 keys in the benchmark): from the timer, once the
  screen has drawn what it had and only if no key came meanwhile, so a press rarely
  waits, and then briefly (little garbage: 10-30 ms at 100,000 answers).

Memory stays bounded either way: the garbage waits at most ``busy_budget`` young
collections. The thresholds are the process's and are given back on exit.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

#: The generation-2 threshold while the app runs: high enough that Python's own full
#: collection never comes first, finite so one still runs if the app stops counting.
BACKSTOP = 1_000


class IdleCollector:
    """Decides when the review app runs a full garbage collection (see module doc)."""

    def __init__(
        self,
        idle_after: float = 1.0,
        busy_budget: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_after = idle_after
        self.busy_budget = busy_budget
        self.clock = clock
        self.presses = 0  # keys and clicks seen, ever
        self.idle_collections = 0
        self.busy_collections = 0
        self.last_pause_ms = 0.0  # the last collection's duration, for the curious
        self._last_input = clock()
        self._presses_at_collection = 0
        self._saved_threshold: tuple[int, ...] = ()

    def install(self) -> None:
        """Put Python's automatic full collections off (kept for :meth:`restore`)."""
        if not self._saved_threshold:
            self._saved_threshold = gc.get_threshold()
            young, middle = self._saved_threshold[:2]
            gc.set_threshold(young, middle, BACKSTOP)

    def restore(self) -> None:
        """Give the process its own thresholds back."""
        if self._saved_threshold:
            gc.set_threshold(*self._saved_threshold)
            self._saved_threshold = ()

    def input_seen(self) -> None:
        """Note a key or click (the pause is counted from the last one)."""
        self.presses += 1
        self._last_input = self.clock()

    def due(self) -> str | None:
        """Which collection is due now (asked by the app's timer): "idle" after a pause
        with input since the last collection, "busy" when enough garbage waits although
        the keys keep coming, else None."""
        if gc.get_count()[2] >= self.busy_budget:
            pending = True
        elif self.presses == self._presses_at_collection:
            return None
        else:
            pending = False
        if self.clock() - self._last_input >= self.idle_after:
            return "idle"
        return "busy" if pending else None

    def collect(self, kind: str, presses: int | None = None) -> None:
        """Run the full collection :meth:`due` asked for. A busy one is dropped if it is
        no longer needed or a key came since ``presses`` (that key must not wait)."""
        if kind == "idle":
            self.idle_collections += 1
        elif gc.get_count()[2] >= self.busy_budget and presses in (None, self.presses):
            self.busy_collections += 1
        else:
            return
        self._collect()

    def _collect(self) -> None:
        started = time.perf_counter()
        gc.collect()
        self.last_pause_ms = (time.perf_counter() - started) * 1000
        self._presses_at_collection = self.presses
