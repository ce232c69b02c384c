"""Leases: which item each open review session is on, so two never review one at once.

A session (one ``coder review`` in a terminal, or one browser tab of ``coder serve``) holds
at most one lease: the item on its screen. Showing another item moves the lease; quitting
drops it; a session that dies without quitting loses it when it expires. Finding the next
item skips items other sessions hold, unless both may have it: double coding (the item is
in this session's ``shared`` set, e.g. assigned to two reviewers, or a blind review where
every reviewer codes everything). The lease is taken in a write transaction that checks
the other holders first, so two sessions moving at the same moment cannot both win.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from coder import lease_queries
from coder.store import Store

#: A lease not renewed for this long is free again (a reviewer away, a killed process).
LEASE_SECONDS = 15 * 60


def _every_item(_response_id: str) -> bool:
    return True


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


@dataclass
class Leases:
    """One review session's lease on the store.

    ``shared`` says which response ids this session may review while another session of a
    *different* reviewer holds them (double coding); a callable is asked each time, so an
    assignment made while the session runs counts.
    """

    store: Store
    reviewer: str
    shared: Callable[[str], bool] | Collection[str] = frozenset()
    seconds: float = LEASE_SECONDS
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    response_id: str | None = None

    @classmethod
    def for_review(cls, store: Store, reviewer: str, *, blind: bool = False) -> Leases:
        """The leases of a review session: a blind review double-codes every item, so its
        items may be shared with other reviewers (never with the same reviewer)."""
        return cls(store, reviewer, shared=_every_item if blind else frozenset())

    def _may_share(self, response_id: str, holder: str) -> bool:
        if holder == self.reviewer:
            return False  # one reviewer in two windows: give them different items
        if callable(self.shared):
            return bool(self.shared(response_id))
        return response_id in self.shared

    def blocked(self) -> set[str]:
        """Response ids another session holds and this one may not share."""
        now = _stamp(datetime.now(UTC))
        return {
            response_id
            for response_id, holder in lease_queries.held_elsewhere(
                self.store, self.session_id, now
            )
            if not self._may_share(response_id, holder)
        }

    def take(self, response_id: str) -> str | None:
        """Lease ``response_id`` for this session. Returns None when taken (or renewed),
        else the name of the reviewer who holds it (then this session holds nothing)."""
        moment = datetime.now(UTC)
        now, expires = _stamp(moment), _stamp(moment + timedelta(seconds=self.seconds))
        with self.store.db.atomic():
            lease_queries.delete_expired(self.store, now)
            for _session, holder in lease_queries.holders(
                self.store, response_id, self.session_id, now
            ):
                if not self._may_share(response_id, holder):
                    lease_queries.delete_session(self.store, self.session_id)
                    self.response_id = None
                    return holder
            lease_queries.put(self.store, self.session_id, self.reviewer, response_id, now, expires)
        self.response_id = response_id
        return None

    def holder_of(self, response_id: str) -> str | None:
        """Who else is on ``response_id`` now (a reviewer name), if anyone."""
        now = _stamp(datetime.now(UTC))
        names = [name for _s, name in lease_queries.holders(self.store, response_id, self.session_id, now)]
        return names[0] if names else None

    def release(self) -> None:
        """Drop this session's lease (on quit)."""
        if not self.store.read_only:
            lease_queries.delete(self.store, self.session_id)
        self.response_id = None


@dataclass(frozen=True)
class LiveLease:
    """A session on an item, for 'who is reviewing what'."""

    reviewer: str
    response_id: str
    since: str
    expires_at: str


def live_leases(store: Store) -> list[LiveLease]:
    """Every session's item now, by reviewer."""
    now = _stamp(datetime.now(UTC))
    return [
        LiveLease(reviewer, response_id, taken, expires)
        for _session, reviewer, response_id, taken, expires in lease_queries.live_leases(
            store, now
        )
    ]
