"""Pages of the review queue for the queue table.

The table never holds the whole queue: it shows one page of the session's filtered view
(the queue screen makes a page a screenful: review_tui/queue_table.py), with texts and
proposed themes read for that page only. PAGE_SIZE is the default for other callers and
the most the screen asks for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from coder import review_queries
from coder.review import QueueEntry
from review_tui.session import ReviewSession

PAGE_SIZE = 200
SNIPPET = 70


@dataclass(frozen=True)
class QueueRow:
    """One row of the queue table."""

    response_id: str
    status: str
    flagged: bool
    confidence: float | None
    question: str
    stance: str
    themes: str
    snippet: str


def page_count(session: ReviewSession, page_size: int = PAGE_SIZE) -> int:
    return max(1, -(-len(session.view) // page_size))


def page_of(session: ReviewSession, position: int, page_size: int = PAGE_SIZE) -> int:
    return position // page_size


def queue_page(session: ReviewSession, page: int, page_size: int = PAGE_SIZE) -> list[QueueRow]:
    """The rows of one page of the session's view."""
    entries: list[QueueEntry] = session.view[page * page_size : (page + 1) * page_size]
    if not entries:
        return []
    proposed = session.index.proposed_themes(entries)
    stances = {} if session.blind else session.index.proposed_stances(entries)
    snippets = review_queries.snippets(
        session.store, [entry.response_id for entry in entries], SNIPPET + 1
    )
    rows = []
    for entry in entries:
        state = entry.state(session.reviewer)
        # An answer double coded blind to the model (coder assign --blind) hides the model's
        # labels and confidence here too, not only on the review screen.
        blind = session.blind or (entry.assigned_blind and session.reviewer in entry.assigned)
        if state.labels_json:
            labels = json.loads(state.labels_json)
            themes = tuple(labels.get("themes") or ())
            stance = labels.get("stance")
        elif blind:
            themes, stance = (), None
        else:
            themes = proposed.get(entry.response_id, ())
            stance = stances.get(entry.response_id)
        snippet = snippets.get(entry.response_id) or ""
        if len(snippet) > SNIPPET:
            snippet = snippet[: SNIPPET - 1] + "…"
        rows.append(
            QueueRow(
                response_id=entry.response_id,
                status=state.status,
                flagged=state.flagged,
                confidence=None if blind else entry.confidence,
                question=entry.question or "",
                stance=stance or "",
                themes=", ".join(themes),
                snippet=snippet,
            )
        )
    return rows
