"""Where a project stands: the counts `coder status` shows (and prints as JSON), and the
coding team's figures that `coder status` and the report share."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

from coder.assign import double_coded
from coder.review import reviewer_sessions
from coder.review.index import comparable_labels
from coder.store import Store

#: How many of the latest review sessions `coder status` lists.
STATUS_SESSIONS = 5


@dataclass(frozen=True)
class ReviewerStats:
    """One reviewer's work: how much, how fast, how often the model was right, and how
    often they agree with their partner on the double-coded answers."""

    reviewer: str
    decisions: int  # every decision but undos
    reviewed: int  # responses with this reviewer's labels in force
    accepted: int  # accept / bulk_accept: the model's proposal unchanged
    corrected: int
    hours: float  # time in review sessions (gaps of 30 min split them)
    per_hour: float | None  # decisions per hour in sessions of a minute or more
    overlap_coded: int  # double-coded answers this reviewer and their partner both coded
    overlap_agreed: int  # ... on which their labels are the same (quote flags aside)

    @property
    def accepted_share(self) -> float | None:
        judged = self.accepted + self.corrected
        return self.accepted / judged if judged else None

    @property
    def overlap_agreement(self) -> float | None:
        return self.overlap_agreed / self.overlap_coded if self.overlap_coded else None

    def describe(self) -> str:
        """One line, e.g. 'ann · 120 decisions · 95/h · 71% accepted unchanged · agrees 84% on 25 shared'."""
        parts = [self.reviewer, f"{self.decisions:,} decision" + ("" if self.decisions == 1 else "s"), f"{self.reviewed:,} reviewed"]
        if self.per_hour is not None:
            parts.append(f"{self.per_hour:,.0f}/h")
        if self.accepted_share is not None:
            parts.append(f"{self.accepted_share:.0%} accepted unchanged")
        if self.overlap_agreement is not None:
            parts.append(f"agrees {self.overlap_agreement:.0%} on {self.overlap_coded:,} shared")
        return " · ".join(parts)


def reviewer_stats(store: Store) -> list[ReviewerStats]:
    """Figures per reviewer, by name (reviewers who made any decision)."""
    sessions = reviewer_sessions(store)
    seconds: dict[str, float] = {}
    timed: Counter[str] = Counter()
    for session in sessions:
        if session.seconds >= 60:
            seconds[session.reviewer] = seconds.get(session.reviewer, 0.0) + session.seconds
            timed[session.reviewer] += session.decisions
    totals: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    corrected: Counter[str] = Counter()
    for session in sessions:
        totals[session.reviewer] += session.decisions
        accepted[session.reviewer] += session.accepted
        corrected[session.reviewer] += session.corrected
    overlap = double_coded(store)
    own: dict[str, dict[str, str | None]] = {}
    for name in totals:
        # The stored JSON, compared as the adjudication screen compares it: status builds no
        # Pydantic records, so it starts without importing pydantic.
        own[name] = {
            rid: comparable_labels(row["labels"])
            for rid, row in store.final_label_rows(reviewer=name).items()
            if row["action"] != "adjudicate"
        }
    coded: Counter[str] = Counter()
    agreed: Counter[str] = Counter()
    for rid, pair in overlap.items():
        first, second = pair[0], pair[1]
        if rid in own.get(first, {}) and rid in own.get(second, {}):
            same = own[first][rid] == own[second][rid]
            for name in (first, second):
                coded[name] += 1
                agreed[name] += same
    return [
        ReviewerStats(
            reviewer=name,
            decisions=totals[name],
            reviewed=len(own[name]),
            accepted=accepted[name],
            corrected=corrected[name],
            hours=seconds.get(name, 0.0) / 3600,
            per_hour=timed[name] / seconds[name] * 3600 if seconds.get(name) else None,
            overlap_coded=coded[name],
            overlap_agreed=agreed[name],
        )
        for name in sorted(totals)
    ]


def project_status(store: Store) -> dict[str, object]:
    """Codebook version, responses, proposals, reviews, the latest review sessions and
    each reviewer's figures."""
    proposed, failed = store.proposal_counts()
    # The last few review sessions: who, when, how many and how fast (coder/review.py).
    sessions = reviewer_sessions(store)[-STATUS_SESSIONS:]
    return {
        "codebook_version": store.codebook_version(),
        "responses": store.count_responses(),
        "proposed": proposed,
        "failed": failed,
        "reviewed": len(store.final_label_rows()),
        "decisions": store.count_decisions(),
        "by_question": store.responses_by_question(),
        "sessions": [{**asdict(session), "line": session.describe()} for session in sessions],
        "reviewers": [
            {**asdict(stats), "accepted_share": stats.accepted_share,
             "overlap_agreement": stats.overlap_agreement, "line": stats.describe()}
            for stats in reviewer_stats(store)
        ],
    }
