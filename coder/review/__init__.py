"""Reviewing logic shared by the review TUI and the CLI (no UI code here).

A reviewer works through a *queue*: every response with its current proposal and
the reviewer's own status. The queue is an in-memory index built with a couple of
SQL queries at start-up (ids, question, tags, confidence, proposed theme codes and
each reviewer's status), so the TUI never has to load every row into widgets.
Response texts and full proposals are read one at a time, when shown.

Decisions are append-only (``Store.add_decision``): correcting, skipping and undoing
all add rows; the proposal is never changed. An undo is a decision with
``action='undo'`` that points at the decision it cancels.

One module per concept, their names re-exported here: ``index`` (the queue's entries and
each reviewer's state), ``first_item`` (the first item, before the index is built),
``queue`` (filters, order, the next item), ``decisions`` (one item, writing and undoing
decisions, bulk accept), ``progress`` (counts, sessions, the
quit summary), ``groups`` (group actions), ``adjudication`` (disagreements) and
``export`` (the labels in force as JSONL).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Imported at once: these two modules share their names with a function they export
# (``review.progress(...)``, ``review.first_item(...)``), and importing a submodule sets the
# package attribute of its name to the module, which a lazy import would then leave there.
from coder.review.first_item import (
    DEFER_INDEX_ABOVE,
    FirstItem,
    assigned_to,
    deferred_first_item,
    first_item,
)
from coder.review.progress import (
    SESSION_GAP_SECONDS,
    Progress,
    ReviewerSession,
    progress,
    quit_summary,
    reviewer_sessions,
)

if TYPE_CHECKING:
    from coder.review.adjudication import (
        Disagreement,
        disagreements,
        two_reviewers,
    )
    from coder.review.background import BackgroundIndex
    from coder.review.decisions import (
        REASON_CODES,
        ReviewItem,
        bulk_accept,
        bulk_accept_candidates,
        decision_action,
        guess_reason,
        load_item,
        proposed_labels,
        record_decision,
        undo,
        undoable_decision,
    )
    from coder.review.export import (
        export_labels,
    )
    from coder.review.groups import (
        GROUP_KINDS,
        GroupChange,
        apply_group,
        group_candidates,
        undo_group,
    )
    from coder.review.index import (
        LABELLING_ACTIONS,
        REVIEWED,
        STATUSES,
        QueueEntry,
        ReviewerState,
        ReviewIndex,
        canonical_labels,
        codebook_or_error,
        same_labels,
    )
    from coder.review.queue import (
        FILTER_STATUSES,
        FilterError,
        QueueFilter,
        check_filter,
        filter_entries,
        next_unreviewed,
        normalised_answer,
        order_entries,
        parse_filter,
        same_text_matches,
        text_matches,
    )

#: Where each exported name lives. The submodules are imported when a name is first
#: used (PEP 562), so ``coder status`` (which needs only ``progress``) does not import
#: the queue, decisions, groups and their Pydantic models; ``from coder.review import X``
#: works as before.
_SUBMODULE_OF = {
    "BackgroundIndex": "background",
    "Disagreement": "adjudication",
    "disagreements": "adjudication",
    "two_reviewers": "adjudication",
    "REASON_CODES": "decisions",
    "ReviewItem": "decisions",
    "bulk_accept": "decisions",
    "bulk_accept_candidates": "decisions",
    "decision_action": "decisions",
    "guess_reason": "decisions",
    "load_item": "decisions",
    "proposed_labels": "decisions",
    "record_decision": "decisions",
    "undo": "decisions",
    "undoable_decision": "decisions",
    "export_labels": "export",
    "GROUP_KINDS": "groups",
    "GroupChange": "groups",
    "apply_group": "groups",
    "group_candidates": "groups",
    "undo_group": "groups",
    "LABELLING_ACTIONS": "index",
    "REVIEWED": "index",
    "STATUSES": "index",
    "QueueEntry": "index",
    "ReviewerState": "index",
    "ReviewIndex": "index",
    "canonical_labels": "index",
    "codebook_or_error": "index",
    "same_labels": "index",
    "FILTER_STATUSES": "queue",
    "FilterError": "queue",
    "QueueFilter": "queue",
    "check_filter": "queue",
    "filter_entries": "queue",
    "next_unreviewed": "queue",
    "normalised_answer": "queue",
    "order_entries": "queue",
    "parse_filter": "queue",
    "same_text_matches": "queue",
    "text_matches": "queue",
}


__all__ = [
    "REASON_CODES",
    "BackgroundIndex",
    "DEFER_INDEX_ABOVE",
    "Disagreement",
    "FILTER_STATUSES",
    "FilterError",
    "FirstItem",
    "GROUP_KINDS",
    "GroupChange",
    "LABELLING_ACTIONS",
    "Progress",
    "QueueEntry",
    "QueueFilter",
    "REVIEWED",
    "ReviewIndex",
    "ReviewItem",
    "ReviewerSession",
    "ReviewerState",
    "SESSION_GAP_SECONDS",
    "STATUSES",
    "apply_group",
    "assigned_to",
    "bulk_accept",
    "bulk_accept_candidates",
    "canonical_labels",
    "check_filter",
    "codebook_or_error",
    "decision_action",
    "deferred_first_item",
    "disagreements",
    "export_labels",
    "filter_entries",
    "first_item",
    "group_candidates",
    "guess_reason",
    "load_item",
    "next_unreviewed",
    "normalised_answer",
    "order_entries",
    "parse_filter",
    "progress",
    "proposed_labels",
    "quit_summary",
    "record_decision",
    "reviewer_sessions",
    "same_labels",
    "same_text_matches",
    "text_matches",
    "two_reviewers",
    "undo",
    "undo_group",
    "undoable_decision",
]


def __getattr__(name: str) -> Any:
    """Import an exported name's submodule on first use."""
    module = _SUBMODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
