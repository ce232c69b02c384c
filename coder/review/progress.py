"""How far reviewing has got: the status bar's counts, reviewers' sessions, the quit summary."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from coder import review_queries as queries
from coder.review.index import REVIEWED, ReviewIndex
from coder.store import Store


@dataclass
class Progress:
    """How far a reviewer has got."""

    total: int
    reviewed: int
    accepted: int
    corrected: int
    skipped: int
    flagged: int
    session_decisions: int
    session_seconds: float

    @property
    def acceptance_rate(self) -> float | None:
        """Share of the model's proposals accepted unchanged (None before any review)."""
        judged = self.accepted + self.corrected
        return self.accepted / judged if judged else None

    @property
    def rate_per_hour(self) -> float | None:
        if self.session_decisions == 0 or self.session_seconds <= 0:
            return None
        return self.session_decisions / self.session_seconds * 3600

    def summary(self) -> str:
        parts = [f"{self.reviewed:,}/{self.total:,} reviewed"]
        rate = self.rate_per_hour
        if rate is not None:
            parts.append(f"{rate:,.0f}/h this session")
        acceptance = self.acceptance_rate
        if acceptance is not None:
            parts.append(f"model accepted {acceptance:.0%}")
        if self.skipped:
            parts.append(f"{self.skipped:,} skipped")
        if self.flagged:
            parts.append(f"{self.flagged:,} quote" + ("" if self.flagged == 1 else "s"))
        return " · ".join(parts)


def progress(
    index: ReviewIndex, reviewer: str, session_decisions: int = 0, session_start: float = 0.0
) -> Progress:
    """Counts for the status bar (a pass over the index: a few ms at 100k)."""
    counts: Counter[str] = Counter()
    flagged = 0
    for entry in index.entries:
        state = entry.reviewers.get(reviewer)
        if state is None:
            continue
        counts[state.status] += 1
        flagged += state.flagged
    return Progress(
        total=len(index.entries),
        reviewed=sum(counts[status] for status in REVIEWED),
        accepted=counts["accepted"],
        corrected=counts["corrected"],
        skipped=counts["skipped"],
        flagged=flagged,
        session_decisions=session_decisions,
        session_seconds=(time.monotonic() - session_start) if session_start else 0.0,
    )


#: A pause longer than this between one reviewer's decisions starts a new session.
SESSION_GAP_SECONDS = 30 * 60


@dataclass(frozen=True)
class ReviewerSession:
    """One reviewer's stretch of work, read back from the decisions' times."""

    reviewer: str
    started: str
    ended: str
    decisions: int
    accepted: int  # accept / bulk_accept: the model's proposal unchanged
    corrected: int

    @property
    def seconds(self) -> float:
        return (_parse_time(self.ended) - _parse_time(self.started)).total_seconds()

    def describe(self) -> str:
        """One line, e.g. 'ann 2026-11-29 10:02-10:40 · 85 decisions (134/h) · 71% accepted'."""
        start, end = _parse_time(self.started), _parse_time(self.ended)
        when = f"{start:%Y-%m-%d %H:%M}-{end:%H:%M}"
        parts = [f"{self.reviewer} {when}", f"{self.decisions:,} decision" + ("" if self.decisions == 1 else "s")]
        if self.seconds >= 60:
            parts[-1] += f" ({self.decisions / self.seconds * 3600:,.0f}/h)"
        judged = self.accepted + self.corrected
        if judged:
            parts.append(f"{self.accepted / judged:.0%} accepted unchanged")
        return " · ".join(parts)


def _parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def reviewer_sessions(
    store: Store, gap_seconds: float = SESSION_GAP_SECONDS
) -> list[ReviewerSession]:
    """Each reviewer's sessions, oldest first (a gap of ``gap_seconds`` splits them)."""
    rows = queries.decision_times(store)
    sessions: list[ReviewerSession] = []
    current: dict[str, Any] | None = None

    def close() -> None:
        if current is not None:
            sessions.append(ReviewerSession(**current))

    for reviewer, action, created_at in rows:
        stamp = _parse_time(created_at)
        if (
            current is None
            or current["reviewer"] != reviewer
            or (stamp - _parse_time(current["ended"])).total_seconds() > gap_seconds
        ):
            close()
            current = {
                "reviewer": reviewer,
                "started": created_at,
                "ended": created_at,
                "decisions": 0,
                "accepted": 0,
                "corrected": 0,
            }
        current["ended"] = created_at
        current["decisions"] += 1
        current["accepted"] += action in ("accept", "bulk_accept")
        current["corrected"] += action == "correct"
    close()
    sessions.sort(key=lambda session: session.started)
    return sessions


def quit_summary(progress: Progress, actions: Counter[str]) -> str:
    """What the reviewer did this session and what is left, printed when the app closes."""
    done = sum(actions.values())
    minutes = progress.session_seconds / 60
    lines = [f"This session: {done:,} decision(s) in {minutes:,.0f} min"]
    rate = progress.rate_per_hour
    if rate is not None and progress.session_seconds >= 60:
        lines[0] += f" ({rate:,.0f}/h)"
    kinds = [
        (actions["accept"] + actions["bulk_accept"], "accepted unchanged"),
        (actions["correct"], "corrected"),
        (actions["skip"], "skipped"),
        (actions["flag_quote"], "flagged as quotes"),
        (actions["note"], "notes"),
        (actions["undo"], "undone"),
    ]
    detail = ", ".join(f"{count:,} {what}" for count, what in kinds if count)
    if detail:
        lines[0] += ": " + detail
    left = progress.total - progress.reviewed
    line = f"Project: {progress.reviewed:,} of {progress.total:,} reviewed, {left:,} left"
    if left and rate and progress.session_seconds >= 60:
        line += f" (about {left / rate:,.1f} h at this pace)"
    lines.append(line + ".")
    return "\n".join(lines)
