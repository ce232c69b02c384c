"""`coder review --filter question:H2` draws its first item before the queue index is built.

A question filter alone is found like the unfiltered first item (coder/review/first_item.py);
any other filter still builds the index at start-up. The deferred session must land on the
item, position and view the eager one does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from coder.review import QueueFilter, parse_filter
from coder.store import Store
from review_tui.app import ReviewApp
from review_tui.session import ReviewSession
from tests.test_review_startup import reviewed_project  # noqa: F401  (a fixture)

SIZE = (120, 40)


def _session(source: Path, tmp_path: Path, name: str, **options: object) -> ReviewSession:
    target = tmp_path / name
    shutil.copy(source, target)
    return ReviewSession(Store(target), "ann", **options)  # type: ignore[arg-type]


def _where(session: ReviewSession) -> tuple[object, ...]:
    assert session.entry is not None
    return (
        session.entry.response_id,
        session.position,
        [entry.response_id for entry in session.view],
        session.queue_filter.describe(),
    )


@pytest.mark.parametrize("order", ["confidence", "import"])
@pytest.mark.parametrize("question", ["H1", "H2"])
def test_a_question_filter_starts_without_the_index(
    reviewed_project: Path,  # noqa: F811
    tmp_path: Path,
    order: str,
    question: str,
) -> None:
    wanted = parse_filter(f"question:{question}")
    eager = _session(reviewed_project, tmp_path, "a.db", order=order, defer_index_above=None)
    eager.set_filter(wanted)  # what `coder review --filter` did before
    lazy = _session(
        reviewed_project,
        tmp_path,
        "b.db",
        order=order,
        defer_index_above=0,
        queue_filter=parse_filter(f"question:{question}"),
    )
    assert not lazy.index_ready  # the first item is known, the queue not yet
    assert lazy.item is not None and eager.item is not None
    assert lazy.item.response.id == eager.item.response.id
    assert lazy.item.response.question == question
    lazy.wait_for_index()
    assert _where(lazy) == _where(eager)
    for session in (eager, lazy):
        session.accept_and_next()
    assert _where(lazy) == _where(eager)


def test_other_filters_build_the_index_at_start_up(
    reviewed_project: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    wanted = "question:H1 status:unreviewed"
    eager = _session(reviewed_project, tmp_path, "a.db", defer_index_above=None)
    eager.set_filter(parse_filter(wanted))
    lazy = _session(
        reviewed_project, tmp_path, "b.db", defer_index_above=0, queue_filter=parse_filter(wanted)
    )
    assert lazy.index_ready
    assert _where(lazy) == _where(eager)


async def test_the_app_draws_the_filtered_item_then_builds_the_index(
    reviewed_project: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    session = _session(
        reviewed_project,
        tmp_path,
        "b.db",
        defer_index_above=0,
        queue_filter=QueueFilter(question="H2"),
    )
    first = session.item.response.id if session.item else None
    app = ReviewApp(session)
    async with app.run_test(size=SIZE) as pilot:
        while not session.index_ready:  # the worker's IndexReady message installs it
            await pilot.pause()
        await pilot.pause()
        assert session.item is not None and session.item.response.id == first
        assert {entry.question for entry in session.view} == {"H2"}
        assert "question:H2" in str(app.screen.query_one("#status-bar").render())
