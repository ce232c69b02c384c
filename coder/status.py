"""Where a project stands: the counts `coder status` shows (and prints as JSON)."""

from __future__ import annotations

from dataclasses import asdict

from coder.review import reviewer_sessions
from coder.store import Store

#: How many of the latest review sessions `coder status` lists.
STATUS_SESSIONS = 5


def project_status(store: Store) -> dict[str, object]:
    """Codebook version, responses, proposals, reviews and the latest review sessions."""
    try:
        version, _ = store.codebook()
    except LookupError:
        version = None
    proposed, failed = store.proposal_counts()
    # The last few review sessions: who, when, how many and how fast (coder/review.py).
    sessions = reviewer_sessions(store)[-STATUS_SESSIONS:]
    return {
        "codebook_version": version,
        "responses": store.count_responses(),
        "proposed": proposed,
        "failed": failed,
        "reviewed": len(store.final_labels()),
        "decisions": store.count_decisions(),
        "by_question": store.responses_by_question(),
        "sessions": [{**asdict(session), "line": session.describe()} for session in sessions],
    }
