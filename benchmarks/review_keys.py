"""The key script of bench_review.py: every key of the review loop, each one timed.

Each press is timed from posting the key to the first screen update that shows the new
state (another screen, item, draft, note, flag, filter or typed text), and to the last
update before the app is idle ("settled"). Multi-key actions are timed key by key: a
stance is `s` (the picker opens) then a choice key (the picker closes, the stance shows).
"""

from __future__ import annotations

import time
from typing import Any

# (wall clock, process CPU time, what was shown) at each screen update
Display = tuple[float, float, tuple[object, ...]]


def state(app: Any) -> tuple[object, ...]:
    """What a reviewer sees change after a key (cheap: read at every screen update)."""
    session = app.session
    item = session.item
    focused = app.focused
    # The review screen asks for reasons, stances and notes in a bar under the panes.
    ask_bar = app.screen.query("#ask-bar")
    return (
        type(app.screen).__name__,
        bool(ask_bar) and ask_bar.first().display,
        item.response.id if item else None,
        session.draft.model_dump_json(),
        (len(item.notes), item.flagged) if item else None,
        len(session.view),
        getattr(focused, "value", None),
    )


class KeyTimer:
    """Press keys through the Pilot and time each one against the recorded updates."""

    def __init__(self, pilot: Any, app: Any, displays: list[Display]) -> None:
        self.pilot = pilot
        self.app = app
        self.displays = displays
        self.first: dict[str, list[float]] = {}
        self.settled: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    async def press(self, name: str, key: str) -> None:
        before = state(self.app)
        self.displays.clear()
        start, cpu_start = time.perf_counter(), time.process_time()
        await self.pilot.press(key)
        await self.pilot.pause()
        changed = [(stamp, cpu) for stamp, cpu, shown in self.displays if shown != before]
        assert changed, f"{name} ({key!r}): the screen never showed a change"
        self.first.setdefault(name, []).append(changed[0][0] - start)
        # CPU time is what a busy machine inflates least (the Pilot's own share included).
        self.cpu.setdefault(name, []).append(changed[0][1] - cpu_start)
        self.settled.setdefault(name, []).append(self.displays[-1][0] - start)

    async def untimed(self, *keys: str) -> None:
        await self.pilot.press(*keys)
        await self.pilot.pause()

    async def type(self, name: str, text: str) -> None:
        for character in text:
            await self.press(name, character)


def _other_stance_key(app: Any) -> str:
    """The picker key of a stance other than the draft's (so picking changes something)."""
    session = app.session
    values = [value.id for value in session.codebook.stance.values]
    index = next(i for i, value in enumerate(values) if value != session.draft.stance)
    return "1234567890"[index]


async def edit_round(timer: KeyTimer, app: Any) -> None:
    """One item: toggle, stance, relevance, quote, note, then correct with a reason."""
    session = app.session
    await timer.press("toggle_theme", "1")
    await timer.press("toggle_theme", "1")
    if session.codebook.has_stance(session.draft.question):
        await timer.press("stance_open", "s")
        await timer.press("stance_pick", _other_stance_key(app))
    await timer.press("relevance_open", "x")  # asks why
    await timer.type("type_in_prompt", "off")
    await timer.press("relevance_save", "enter")
    await timer.press("relevance_include", "x")  # back to relevant: no prompt
    await timer.press("quote_flag", "f")
    await timer.press("quote_flag", "f")
    await timer.press("note_open", "n")
    await timer.type("type_in_prompt", "ok")
    await timer.press("note_save", "enter")
    await timer.press("toggle_theme", "1")  # an edit, so accepting asks for a reason
    await timer.press("correct_open_reason", "a")
    await timer.press("correct_with_reason_next", "w")


async def queue_round(timer: KeyTimer, filter_text: str, leave: str) -> None:
    """Open the queue, type a filter, apply it, then open an item or go back."""
    await timer.press("open_queue", "l")
    await timer.untimed("ctrl+u")
    await timer.type("type_in_filter", filter_text or " ")
    await timer.press("filter_apply", "enter")
    await timer.press("queue_open_item" if leave == "enter" else "queue_back", leave)


async def press_every_key(pilot: Any, app: Any, displays: list[Display], keys: int) -> dict:
    """Time every key of the review loop; returns summaries keyed by action."""
    from bench_review import summary_ms

    timer = KeyTimer(pilot, app, displays)
    for _ in range(keys):
        await timer.press("accept_next", "a")
    rounds = max(20, keys // 10)
    for _ in range(rounds):
        await edit_round(timer, app)
        await timer.press("skip_next", "k")
    for _ in range(20):
        await timer.press("undo", "u")
    for number in range(10):
        # Alternate a narrow filter and "everything", so both ends of the cost are timed.
        await queue_round(timer, "question:H2" if number % 2 == 0 else "", "enter")
        await queue_round(timer, "" if number % 2 == 0 else "question:H2", "escape")
    result: dict[str, Any] = {name: summary_ms(values) for name, values in timer.first.items()}
    result["settled"] = {name: summary_ms(values) for name, values in timer.settled.items()}
    result["cpu_to_first_update"] = {name: summary_ms(values) for name, values in timer.cpu.items()}
    return result
