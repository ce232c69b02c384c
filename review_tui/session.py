"""The review session: where the reviewer is, the item on screen and its unsaved edits.

This is the app's data layer over :mod:`coder.review` (which does the reviewing logic
and writes decisions). It holds no widgets, so it can be tested and benchmarked
without a terminal.

Edits to the labels of the item on screen (theme toggles, stance, question,
relevance) are a *draft* until the reviewer commits them (accept / Enter): one
decision per item, not one per key press. Leaving a changed item any other way
(next, previous, jump, queue, quit) commits the draft too, so nothing is lost.
Flags, notes and skips are written at once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from coder import review
from coder.errors import CoderError
from coder.leases import Leases
from coder.review import QueueEntry, QueueFilter, ReviewItem
from coder.store import Store
from review_tui.session_queue import SessionQueue
from schemas import Labels, Theme


@dataclass
class Committed:
    """What a commit wrote (None when nothing needed writing)."""

    action: str
    decision_id: int


def _or_double_coded(
    shared: Callable[[str], bool] | Collection[str], session: ReviewSession
) -> Callable[[str], bool]:
    def may_share(response_id: str) -> bool:
        # Before the index is built only the first item is known (with its assignment).
        entry = session.index.by_id.get(response_id) if session.index_ready else session.entry
        if entry is not None and entry.response_id != response_id:
            entry = None
        if entry is not None:
            names = entry.assigned
        elif not session.index_ready:
            # Asked at start-up for the few items other sessions hold: a partner's
            # double-coded item may still be this reviewer's first (one indexed query each).
            names = review.assigned_to(session.store, response_id)
        else:
            names = ()
        if session.reviewer in names and len(names) > 1:
            return True
        return bool(shared(response_id)) if callable(shared) else response_id in shared

    return may_share


class ReviewSession(SessionQueue):
    """One reviewer's session over one project file."""

    def __init__(
        self,
        store: Store,
        reviewer: str,
        *,
        blind: bool = False,
        order: str | None = None,
        leases: Leases | None = None,
        reviewer_locked: bool = False,
        defer_index_above: int | None = review.DEFER_INDEX_ABOVE,
        queue_filter: QueueFilter | None = None,
    ) -> None:
        """``queue_filter`` is the filter to start with (``coder review --filter``)."""
        self.store = store
        self.reviewer = reviewer
        self.blind = blind
        # With leases, the item on screen is leased and other sessions' items are passed
        # over; held_by names who else is on the item shown (after a jump to it).
        self.leases = leases
        self.held_by: str | None = None
        # A served session (coder serve) signs in as one reviewer and cannot switch.
        self.reviewer_locked = reviewer_locked
        self.codebook_version, self.codebook = review.codebook_or_error(store)
        if leases is not None:
            # Double coding (an answer assigned to two reviewers, coder/assign.py) lets both
            # open it at once, on top of what the leases already share (a blind review).
            leases.shared = _or_double_coded(leases.shared, self)
        # Blind reviewers do not see the model's confidence, so it does not order their work.
        self.order_name = order or ("import" if blind else "confidence")
        self.queue_filter = QueueFilter()
        blocked = leases.blocked() if leases is not None else ()
        # A question filter alone (the usual one) is found without the index too.
        first = None
        if queue_filter is None or queue_filter == QueueFilter(question=queue_filter.question):
            question = queue_filter.question if queue_filter else None
            first = review.deferred_first_item(
                store, reviewer, self.order_name, defer_index_above, blocked, question
            )
        if first is not None and queue_filter is not None:
            self.queue_filter, queue_filter = queue_filter, None  # applied by _install
        self._start_queue(first)
        if self.index_ready:
            self.position = self._free_position(0) or 0
        self.item: ReviewItem | None = None
        self.draft: Labels = Labels()
        self.draft_history: list[Labels] = []
        # This session's decisions, newest last; a group action is one step of many ids.
        self.undo_stack: list[list[int]] = []
        self.session_decisions = 0
        self.session_actions: Counter[str] = Counter()  # for the summary on quit
        self.started = time.monotonic()
        self.load_current()
        if queue_filter is not None:
            self.set_filter(queue_filter)  # any other filter needs the index: built now

    # --- the current item ------------------------------------------------------------
    def load_current(self) -> ReviewItem | None:
        entry = self.entry
        if entry is None:
            self.item = None
            self.draft = Labels()
        else:
            self.item = review.load_item(self.store, entry, self.reviewer, self.blind)
            self.draft = self.item.labels.model_copy()
        if self.leases is not None and not self.store.read_only:
            if entry is None:
                self.leases.release()
                self.held_by = None
            else:
                self.held_by = self.leases.take(entry.response_id)
        self.draft_history = []
        return self.item

    def _free_position(self, start: int) -> int | None:
        """The next unreviewed item at or after ``start`` that no other session is on."""
        self.wait_for_index()
        skip = self.leases.blocked() if self.leases is not None else ()
        return review.next_unreviewed(self.view, self.reviewer, start, skip=skip)

    @property
    def dirty(self) -> bool:
        """True when the draft differs from the labels in force."""
        if self.item is None:
            return False
        return not review.same_labels(self.draft, self.item.labels)

    def applicable_themes(self) -> list[Theme]:
        """Themes for the draft's question, in codebook order (number keys follow it)."""
        return self.codebook.themes_for(self.draft.question)

    def _edit(self, **changes: object) -> None:
        self.draft_history.append(self.draft)
        self.draft = review.canonical_labels(self.draft.model_copy(update=changes))

    def toggle_theme(self, theme_id: str) -> bool:
        """Add or remove a theme. Returns True if it is now applied."""
        themes = set(self.draft.themes)
        applied = theme_id not in themes
        themes.symmetric_difference_update({theme_id})
        # Coding a theme means the response is relevant after all.
        self._edit(themes=sorted(themes), relevant=self.draft.relevant or applied)
        if applied:
            self.draft = self.draft.model_copy(update={"relevance_reason": None})
        return applied

    def toggle_theme_number(self, number: int) -> str | None:
        """Toggle the ``number``-th applicable theme (1-based; 0 means 10)."""
        themes = self.applicable_themes()
        index = (number or 10) - 1
        if index >= len(themes):
            return None
        self.toggle_theme(themes[index].id)
        return themes[index].id

    def set_stance(self, stance: str | None) -> None:
        self._edit(stance=stance)

    def set_question(self, question: str | None) -> None:
        allowed = {theme.id for theme in self.codebook.themes_for(question)}
        # A question that asks for ideas (has_stance: false) takes no stance.
        stance = self.draft.stance if self.codebook.has_stance(question) else None
        self._edit(
            question=question,
            themes=[t for t in self.draft.themes if t in allowed],
            stance=stance,
        )

    def set_relevant(self, relevant: bool, reason: str | None = None) -> None:
        if relevant:
            self._edit(relevant=True, relevance_reason=None)
        else:
            self._edit(relevant=False, relevance_reason=reason or None, themes=[])

    # --- writing ------------------------------------------------------------------------
    def _record(self, action: str, **fields: object) -> int:
        self.wait_for_index()
        assert self.entry is not None
        before = self.entry.state(self.reviewer)
        before_status, before_flag = before.status, before.flagged
        decision_id = review.record_decision(
            self.store,
            self.index,
            response_id=self.entry.response_id,
            reviewer=self.reviewer,
            action=action,
            **fields,  # type: ignore[arg-type]
        )
        self.undo_stack.append([decision_id])
        self.session_decisions += 1
        self.session_actions[action] += 1
        after = self.entry.state(self.reviewer)
        self._count(before_status, before_flag, -1)
        self._count(after.status, after.flagged, +1)
        return decision_id

    def _count(self, status: str, flagged: bool, sign: int) -> None:
        """Keep the progress counts in step without a pass over 100,000 entries."""
        counts = self._progress
        counts.reviewed += sign if status in review.REVIEWED else 0
        if status in ("accepted", "corrected", "skipped"):
            setattr(counts, status, getattr(counts, status) + sign)
        counts.flagged += sign if flagged else 0

    def pending_action(self) -> str | None:
        """The action a commit would write now (None: nothing to write)."""
        if self.item is None:
            return None
        if self.item.status in review.REVIEWED and not self.dirty:
            return None
        return review.decision_action(self.item, self.draft, self.blind)

    def needs_reason(self) -> bool:
        """True when committing now corrects the model (so a reason code is asked)."""
        return (
            not self.blind
            and self.pending_action() == "correct"
            and self.item is not None
            and (self.item.proposal is not None)
        )

    def suggested_reason(self) -> str | None:
        return review.guess_reason(self.item, self.draft) if self.item else None

    def commit(self, reason_code: str | None = None) -> Committed | None:
        """Write the draft as this item's decision, if it changes anything."""
        action = self.pending_action()
        if action is None:
            return None
        decision_id = self._record(
            action,
            labels=self.draft,
            reason_code=reason_code if action == "correct" else None,
        )
        self.load_current()
        return Committed(action, decision_id)

    def accept_and_next(self, reason_code: str | None = None) -> Committed | None:
        committed = self.commit(reason_code)
        self.advance()
        return committed

    def skip(self) -> None:
        """Record a skip (unsaved edits are committed first) and move on."""
        if self.item is None:
            return
        self._leave()
        self._record("skip")
        self.advance()

    def toggle_quote(self) -> bool:
        """Flag or unflag the response as a quote for the report. Returns the new flag."""
        if self.item is None:
            return False
        flagged = not self.draft.quote
        # The flag is written on the labels in force; unsaved edits stay a draft (and
        # stay marked as edited) until the reviewer accepts them.
        labels = self.item.labels.model_copy(update={"quote": flagged})
        self._record("flag_quote" if flagged else "unflag_quote", labels=labels)
        draft = self.draft.model_copy(update={"quote": flagged})
        history = self.draft_history
        self.load_current()
        self.draft, self.draft_history = draft, history
        return flagged

    def group_candidates(self, change: review.GroupChange) -> list[QueueEntry]:
        """The answers shown in the queue that a group change would touch."""
        self.wait_for_index()
        return review.group_candidates(self.view, self.reviewer, self.codebook, change)

    def apply_group(self, change: review.GroupChange, entries: Sequence[QueueEntry]) -> int:
        """Write ``change`` for ``entries`` as one undo step. Returns how many changed."""
        self._leave()
        ids = review.apply_group(
            self.store,
            self.index,
            entries,
            self.reviewer,
            change,
            blind=self.blind,
            actions=self.session_actions,
        )
        if ids:
            self.undo_stack.append(ids)
            self.session_decisions += len(ids)
        self.recount()
        self.load_current()
        return len(ids)

    def add_note(self, text: str) -> None:
        if self.item is not None and text.strip():
            self._record("note", note=text.strip())
            self.item.notes.append((self.reviewer, text.strip()))

    def undo(self) -> str:
        """Undo the last edit of the draft, else this session's last decision."""
        if self.draft_history:
            self.draft = self.draft_history.pop()
            return "edit undone"
        while self.undo_stack:
            step = self.undo_stack.pop()
            if len(step) > 1:
                undone = review.undo_group(self.store, self.index, step, self.reviewer)
                if not undone:
                    continue
                self.session_decisions += undone
                self.session_actions["undo"] += undone
                self.recount()
                self.set_filter(self.queue_filter, keep_position=True)
                return f"group action undone ({undone:,} answers)"
            decision_id = step[0]
            decision = review.undoable_decision(self.store, decision_id)
            if decision is None:
                continue
            entry = self.index.by_id[decision.response_id]
            before = entry.state(self.reviewer)
            before_status, before_flag = before.status, before.flagged
            response_id = review.undo(self.store, self.index, decision_id, self.reviewer)
            if response_id is None:
                continue
            after = entry.state(self.reviewer)
            self._count(before_status, before_flag, -1)
            self._count(after.status, after.flagged, +1)
            self.session_decisions += 1
            self.session_actions["undo"] += 1
            self.go_to(response_id, commit=False)
            return f"decision {decision_id} undone"
        return "nothing to undo"

    @property
    def can_undo(self) -> bool:
        return bool(self.draft_history or self.undo_stack)

    # --- moving ------------------------------------------------------------------------
    def _leave(self) -> None:
        if self.dirty:
            self.commit()

    def advance(self) -> None:
        """Go to the next unreviewed item after this one (wrapping), or stay."""
        self.wait_for_index()
        if not self.view:
            return
        start = (self.position + 1) % len(self.view)
        found = self._free_position(start)
        if found is not None:
            self.position = found
        elif self.position + 1 < len(self.view):
            self.position += 1
        self.load_current()
        # Another session leased the item between the look and the take: look again.
        for _ in range(5):
            if self.held_by is None or found is None:
                break
            found = self._free_position((self.position + 1) % len(self.view))
            if found is not None:
                self.position = found
                self.load_current()

    def step(self, delta: int) -> None:
        """Previous (-1) or next (+1) item in the queue, reviewed or not."""
        self.wait_for_index()
        if not self.view:
            return
        self._leave()
        self.position = max(0, min(len(self.view) - 1, self.position + delta))
        self.load_current()

    def go_to(self, response_id: str, *, commit: bool = True, position: int | None = None) -> bool:
        """Show one response; the filter is cleared if it hides it. ``position`` is where
        the caller saw it in the view (the queue table), checked before it is trusted."""
        self.wait_for_index()
        if commit:
            self._leave()
        if position is None or not (
            0 <= position < len(self.view) and self.view[position].response_id == response_id
        ):
            # Mapping a whole 100k view to positions costs tens of ms after each filter.
            position = self.position_of(response_id)
        if position is None:
            if response_id not in self.index.by_id:
                return False
            self.set_filter(QueueFilter(), keep_position=False)
            position = self.position_of(response_id) or 0
        self.position = position
        self.load_current()
        return True

    def set_filter(self, queue_filter: QueueFilter, keep_position: bool = False) -> int:
        """Review only the items that pass the filter. Returns how many."""
        self.wait_for_index()
        self._leave()
        current = self.entry.response_id if self.entry else None
        if self.blind:
            # A blind reviewer must not learn what others decided.
            queue_filter.reviewer = None
            queue_filter.disagreement = False
        self.queue_filter = queue_filter
        entries = self.order_to_filter(queue_filter.question)
        self.view = review.filter_entries(self.index, entries, queue_filter, self.reviewer)
        self._positions = None
        self.position = 0
        if keep_position and current is not None:
            self.position = self.position_of(current) or 0
        else:
            self.position = self._free_position(0) or 0
        self.load_current()
        return len(self.view)

    def set_order(self, order: str) -> None:
        self.wait_for_index()
        self.order_name = order
        self.order = review.order_entries(self.index.entries, order)
        self.set_filter(self.queue_filter, keep_position=True)

    def reorder(self, entries: Sequence[QueueEntry]) -> None:
        """A new review order from outside (e.g. retrained model's uncertainty)."""
        self.wait_for_index()
        self.order = list(entries)
        self.set_filter(self.queue_filter, keep_position=True)

    def switch_reviewer(self, reviewer: str) -> None:
        if self.reviewer_locked:
            raise CoderError(f"signed in as {self.reviewer}: the reviewer cannot be changed")
        self.wait_for_index()
        self._leave()
        self.reviewer = reviewer
        if self.leases is not None:
            self.leases.reviewer = reviewer
        self.undo_stack = []
        self.session_decisions = 0
        self.session_actions = Counter()
        self.started = time.monotonic()
        self.recount()
        self.set_filter(self.queue_filter)

    def sync(self) -> None:
        """Fold in other reviewers' decisions made since start-up."""
        if self.index.sync():
            self.recount()
            self.load_current()

    def progress(self) -> review.Progress:
        counts = self._progress
        counts.session_decisions = self.session_decisions
        counts.session_seconds = time.monotonic() - self.started
        return counts

    def recount(self) -> None:
        """Recount progress from the index (after bulk changes or a sync)."""
        self.wait_for_index()
        self._progress = review.progress(self.index, self.reviewer)

    def close(self) -> None:
        """Commit any unsaved edits and give up the lease (called on quit)."""
        self._leave()
        if self.leases is not None:
            self.leases.release()

    def summary(self) -> str:
        """This session's work and what is left (printed after the app closes)."""
        return review.quit_summary(self.progress(), self.session_actions)
