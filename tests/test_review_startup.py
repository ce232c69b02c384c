"""Start-up of a big review: the first item without the index, the index built in a worker.

A project above ``DEFER_INDEX_ABOVE`` responses starts from :func:`review.first_item` and
builds the queue index in a thread; every key must act exactly as it would with the index
built first. The tests force the deferred path on small projects (``defer_index_above=0``)
and compare it with the eager one on a copy of the same file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coder import review
from coder.assign import assign
from coder.leases import Leases
from coder.review import ReviewIndex
from coder.store import Store
from review_tui.app import ReviewApp
from review_tui.session import ReviewSession
from schemas import Labels, Response
from tests.review_data import build_project, small_codebook

SIZE = (120, 40)


def _decide_least_confident(store: Store, reviewer: str, count: int) -> None:
    """``reviewer`` accepts the ``count`` least confident items, skips the next, and undoes
    one accept, so the first unreviewed item lies past the first batch of proposals."""
    order = review.order_entries(ReviewIndex(store).entries)
    proposals = store.current_proposals()
    first_accept = None
    for entry in order[:count]:
        proposed = proposals[entry.response_id].proposal
        assert proposed is not None
        decision = store.add_decision(
            response_id=entry.response_id,
            reviewer=reviewer,
            action="accept",
            labels=Labels.from_proposal(proposed),
            proposal_id=entry.proposal_id,
        )
        first_accept = first_accept or (entry.response_id, decision)
    store.add_decision(response_id=order[count].response_id, reviewer=reviewer, action="skip")
    store.add_decision(response_id=order[count + 1].response_id, reviewer="bob", action="skip")
    assert first_accept is not None
    store.add_decision(
        response_id=first_accept[0], reviewer=reviewer, action="undo", undoes=first_accept[1]
    )


@pytest.fixture(scope="module")
def reviewed_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 1,100 responses: confidences repeat every 1,000 (ties broken by import order), and
    # 300 accepted items push the first unreviewed one past the first batch of 256.
    path = tmp_path_factory.mktemp("startup") / "big.db"
    store = build_project(path, 1100, codebook=small_codebook())
    _decide_least_confident(store, "ann", 300)
    store.close()
    return path


def counts(session: ReviewSession) -> tuple[int, ...]:
    p = session.progress()
    return (p.total, p.reviewed, p.accepted, p.corrected, p.skipped, p.flagged)


def _copy(source: Path, tmp_path: Path, name: str) -> Store:
    target = tmp_path / name
    shutil.copy(source, target)
    return Store(target)


@pytest.mark.parametrize("order", ["confidence", "import"])
@pytest.mark.parametrize("reviewer", ["ann", "bob", "new"])
def test_first_item_is_the_one_the_index_puts_first(
    reviewed_project: Path, tmp_path: Path, order: str, reviewer: str
) -> None:
    store = _copy(reviewed_project, tmp_path, "copy.db")
    index = ReviewIndex(store)
    ordered = review.order_entries(index.entries, order)
    position = review.next_unreviewed(ordered, reviewer)
    assert position is not None
    expected = ordered[position]

    first = review.first_item(store, reviewer, order)

    assert first is not None
    assert first.entry.response_id == expected.response_id
    assert (first.entry.proposal_id, first.entry.confidence) == (
        expected.proposal_id,
        expected.confidence,
    )
    assert (first.entry.question, first.entry.tags_json) == (expected.question, expected.tags_json)
    assert first.entry.reviewers == expected.reviewers
    assert first.progress == review.progress(index, reviewer)


@pytest.mark.parametrize("order", ["confidence", "import"])
@pytest.mark.parametrize("reviewer", ["ann", "bob", "cy"])
@pytest.mark.parametrize("blind", [False, True])
def test_first_item_with_assignments_is_the_one_the_index_puts_first(
    reviewed_project: Path, tmp_path: Path, order: str, reviewer: str, blind: bool
) -> None:
    store = _copy(reviewed_project, tmp_path, "copy.db")
    # ann and bob split the unreviewed answers, a fifth double-coded; cy has no share
    # (so cy may take only answers assigned to nobody: those reviewed before the split).
    assign(store, ["ann", "bob"], 0.2, seed=3, blind=blind)
    index = ReviewIndex(store)
    ordered = review.order_entries(index.entries, order)
    position = review.next_unreviewed(ordered, reviewer)

    first = review.first_item(store, reviewer, order)

    if position is None:
        assert first is None
        return
    assert first is not None
    expected = ordered[position]
    assert first.entry.response_id == expected.response_id
    assert (first.entry.assigned, first.entry.assigned_blind) == (
        expected.assigned,
        expected.assigned_blind,
    )
    assert first.entry.reviewers == expected.reviewers
    assert first.progress == review.progress(index, reviewer)


def test_first_item_declines_what_it_cannot_tell_exactly(tmp_path: Path) -> None:
    store = build_project(tmp_path / "p.db", 30, codebook=small_codebook())
    assert review.first_item(store, "ann", "confidence") is not None
    # Not every response has a proposal: the unproposed one would come first.
    store.add_responses([Response(id="late", text="Added after precoding.", question="H1")])
    assert review.first_item(store, "ann", "confidence") is None
    assert review.first_item(store, "ann", "import") is not None
    # Small projects build the index at once.
    assert review.deferred_first_item(store, "ann", "import", 1000) is None


def test_keys_before_the_index_is_built_act_on_the_whole_queue(
    reviewed_project: Path, tmp_path: Path
) -> None:
    eager = ReviewSession(_copy(reviewed_project, tmp_path, "a.db"), "ann", defer_index_above=None)
    lazy = ReviewSession(_copy(reviewed_project, tmp_path, "b.db"), "ann", defer_index_above=0)
    assert eager.index_ready and not lazy.index_ready
    assert lazy.entry is not None and eager.entry is not None
    assert lazy.entry.response_id == eager.entry.response_id
    assert counts(lazy) == counts(eager)
    assert lazy.view == []  # nothing of the queue is known yet

    # Editing the draft needs no index.
    for session in (eager, lazy):
        session.toggle_theme_number(1)
    assert not lazy.index_ready

    # Accepting needs it: the session waits for it, then writes and moves as the eager one.
    for session in (eager, lazy):
        session.accept_and_next(reason_code="wrong_theme")
    assert lazy.index_ready
    assert lazy.position == eager.position
    assert lazy.item is not None and eager.item is not None
    assert lazy.item.response.id == eager.item.response.id
    assert counts(lazy) == counts(eager)
    assert [(d.response_id, d.action, d.labels) for d in lazy.store.decisions()] == [
        (d.response_id, d.action, d.labels) for d in eager.store.decisions()
    ]


def test_the_worker_builds_the_index_and_keys_wait_for_it(
    reviewed_project: Path, tmp_path: Path
) -> None:
    eager = ReviewSession(_copy(reviewed_project, tmp_path, "a.db"), "ann", defer_index_above=None)
    lazy = ReviewSession(_copy(reviewed_project, tmp_path, "b.db"), "ann", defer_index_above=0)
    lazy.start_index_build()
    for session in (eager, lazy):
        session.step(+1)  # the next item in the whole queue (a reviewed one)
    assert lazy.index_ready
    assert lazy.position == eager.position == 1
    assert lazy.entry is not None and eager.entry is not None
    assert lazy.entry.response_id == eager.entry.response_id
    assert lazy.entry.status("ann") == "accepted"


async def _run_keys(
    store: Store, defer_index_above: int | None
) -> tuple[str, list[tuple[str, str]]]:
    session = ReviewSession(store, "ann", defer_index_above=defer_index_above)
    app = ReviewApp(session)
    async with app.run_test(size=SIZE) as pilot:
        # Pressed at once: the index may or may not be built yet; the outcome must not differ.
        await pilot.press("a", "k", "left", "a", "right", "f")
        await pilot.pause()
        while not session.index_ready:
            await pilot.pause()
        assert session.item is not None
        decisions = [(d.response_id, d.action) for d in store.decisions()]
        status = str(app.screen.query_one("#status-bar").render())
        return session.item.response.id + " " + status.split("  ", 2)[-1], decisions


async def test_the_app_gives_the_same_result_with_the_index_deferred(
    reviewed_project: Path, tmp_path: Path
) -> None:
    eager = await _run_keys(_copy(reviewed_project, tmp_path, "a.db"), None)
    deferred = await _run_keys(_copy(reviewed_project, tmp_path, "b.db"), 0)
    assert deferred == eager
    assert "item " in deferred[0]  # the status bar shows the place in the queue once built


async def test_the_app_builds_the_index_after_the_first_item_is_drawn(tmp_path: Path) -> None:
    store = build_project(tmp_path / "p.db", 40, codebook=small_codebook())
    session = ReviewSession(store, "ann", defer_index_above=0)
    assert not session.index_ready
    app = ReviewApp(session)
    async with app.run_test(size=SIZE) as pilot:
        while not session.index_ready:  # the worker's IndexReady message installs it
            await pilot.pause()
        await pilot.pause()
        status = str(app.screen.query_one("#status-bar").render())
        assert "item 1 of 40" in status


def test_the_first_item_passes_over_items_other_sessions_hold(
    reviewed_project: Path, tmp_path: Path
) -> None:
    first_ids = []
    for name, defer in (("a.db", None), ("b.db", 0)):
        store = _copy(reviewed_project, tmp_path, name)
        alone = review.first_item(store, "ann", "confidence")
        assert alone is not None
        Leases.for_review(store, "bob").take(alone.entry.response_id)
        session = ReviewSession(
            store, "ann", leases=Leases.for_review(store, "ann"), defer_index_above=defer
        )
        assert session.index_ready is (defer is None)
        assert session.entry is not None and session.held_by is None
        assert session.entry.response_id != alone.entry.response_id
        first_ids.append(session.entry.response_id)
    assert first_ids[0] == first_ids[1]
