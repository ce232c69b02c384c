"""Leases keep two review sessions off the same item (real SQLite, real sessions and app)."""

from __future__ import annotations

from pathlib import Path

from coder.leases import Leases, live_leases
from coder.store import Store
from review_tui.app import ReviewApp
from review_tui.served_app import ServedReviewApp
from review_tui.session import ReviewSession
from tests.review_data import build_project


def test_a_leased_item_is_refused_to_another_session(db_path: Path) -> None:
    build_project(db_path, 5).close()
    with Store(db_path) as first, Store(db_path) as second:
        ann, bob = Leases(first, "ann"), Leases(second, "bob")
        assert ann.take("r000001") is None
        assert bob.take("r000001") == "ann"
        assert bob.response_id is None and bob.blocked() == {"r000001"}
        assert bob.holder_of("r000001") == "ann"
        assert bob.take("r000002") is None
        assert ann.take("r000002") == "bob"  # ann lost the race: she now holds nothing
        assert {(lease.reviewer, lease.response_id) for lease in live_leases(first)} == {
            ("bob", "r000002")
        }
        bob.release()
        assert ann.take("r000002") is None


def test_one_reviewer_in_two_windows_gets_different_items(db_path: Path) -> None:
    build_project(db_path, 3).close()
    with Store(db_path) as store:
        window1, window2 = Leases(store, "ann"), Leases(store, "ann", shared={"r000001"})
        assert window1.take("r000001") is None
        assert window2.take("r000001") == "ann"


def test_double_coded_items_may_be_shared(db_path: Path) -> None:
    build_project(db_path, 3).close()
    with Store(db_path) as store:
        ann = Leases(store, "ann", shared={"r000001"})
        bob = Leases(store, "bob", shared=lambda response_id: response_id == "r000001")
        assert ann.take("r000001") is None and bob.take("r000001") is None
        assert ann.blocked() == set()
        assert bob.take("r000000") is None and ann.take("r000000") == "bob"


def test_an_expired_lease_is_free(db_path: Path) -> None:
    build_project(db_path, 3).close()
    with Store(db_path) as store:
        # A session that died without quitting: its lease lapsed (expires at once here).
        assert Leases(store, "ann", seconds=0).take("r000001") is None
        assert Leases(store, "bob").take("r000001") is None
        assert [lease.reviewer for lease in live_leases(store)] == ["bob"]


def _session(store: Store, reviewer: str, **options: object) -> ReviewSession:
    blind = bool(options.get("blind", False))
    leases = Leases.for_review(store, reviewer, blind=blind)
    return ReviewSession(store, reviewer, blind=blind, order="import", leases=leases)


def test_two_sessions_never_show_the_same_item(db_path: Path) -> None:
    build_project(db_path, 8).close()
    with Store(db_path) as first, Store(db_path) as second:
        ann, bob = _session(first, "ann"), _session(second, "bob")
        assert ann.entry is not None and bob.entry is not None
        assert ann.entry.response_id == "r000000" and bob.entry.response_id == "r000001"
        seen = []
        for _ in range(3):
            ann.accept_and_next()
            bob.skip()
            assert ann.entry is not None and bob.entry is not None
            assert ann.entry.response_id != bob.entry.response_id
            seen.append((ann.entry.response_id, bob.entry.response_id))
        assert seen[0] == ("r000002", "r000003")
        # Jumping onto another session's item is allowed, and says who is on it.
        assert bob.go_to(ann.entry.response_id)
        assert bob.held_by == "ann"
        ann.close()
        assert [lease.reviewer for lease in live_leases(first)] == []
        bob.close()


def test_blind_reviewers_double_code_the_same_item(db_path: Path) -> None:
    build_project(db_path, 4).close()
    with Store(db_path) as first, Store(db_path) as second:
        ann, bob = _session(first, "ann", blind=True), _session(second, "bob", blind=True)
        assert ann.entry is not None and bob.entry is not None
        assert ann.entry.response_id == bob.entry.response_id == "r000000"
        assert bob.held_by is None


async def test_the_app_says_who_is_on_the_item(db_path: Path) -> None:
    build_project(db_path, 4).close()
    with Store(db_path) as first, Store(db_path) as second:
        Leases(first, "ann").take("r000002")
        app = ReviewApp(_session(second, "bob"))
        async with app.run_test(size=(120, 40)) as pilot:
            app.go_to("r000002")
            await pilot.pause()
            assert any("ann is on this one" in str(n.message) for n in app._notifications)


async def test_a_served_app_cannot_switch_reviewer(db_path: Path) -> None:
    build_project(db_path, 4).close()
    with Store(db_path) as store:
        session = ReviewSession(store, "ann", order="import", reviewer_locked=True)
        app = ServedReviewApp(session)
        async with app.run_test(size=(120, 40)) as pilot:
            app.switch_reviewer("bob")
            await pilot.press("a")
            await pilot.pause()
            assert any("cannot be changed" in str(n.message) for n in app._notifications)
        assert {d.reviewer for d in store.decisions()} == {"ann"}
        assert session.reviewer == "ann"


async def test_a_served_app_writes_no_export_on_the_server(db_path: Path) -> None:
    build_project(db_path, 4).close()
    with Store(db_path) as store:
        app = ServedReviewApp(ReviewSession(store, "ann", reviewer_locked=True))
        async with app.run_test(size=(120, 40)) as pilot:
            app.export_labels()
            await pilot.pause()
            assert any("not available in the browser" in str(n.message) for n in app._notifications)
    assert not Path(str(db_path) + ".labels.jsonl").exists()


def test_an_answer_assigned_to_two_reviewers_may_be_open_twice(db_path: Path) -> None:
    from coder.assign import assign, double_coded

    build_project(db_path, 10).close()
    with Store(db_path) as first, Store(db_path) as second:
        assign(first, ["ann", "bob"], 1.0, seed=1)  # every answer double coded
        shared = next(iter(double_coded(first)))
        Leases(first, "ann").take(shared)
        bob = _session(second, "bob")
        assert bob.go_to(shared) and bob.held_by is None  # bob got the lease too
        holders = {lease.reviewer for lease in live_leases(second) if lease.response_id == shared}
        assert holders == {"ann", "bob"}
        # A third reviewer, not assigned, is still kept off it.
        assert Leases(second, "cy").take(shared) is not None


def test_a_partners_double_coded_item_is_still_my_first_before_the_index(db_path: Path) -> None:
    from coder.assign import assign

    build_project(db_path, 10).close()
    with Store(db_path) as first, Store(db_path) as second, Store(db_path) as third:
        assign(first, ["ann", "bob"], 1.0, seed=1)  # every answer double coded
        bob = _session(first, "bob")
        assert bob.entry is not None and bob.entry.response_id == "r000000"
        # ann's session finds its first item before the index exists (as at 100k answers).
        leases = Leases.for_review(second, "ann")
        ann = ReviewSession(second, "ann", order="import", leases=leases, defer_index_above=0)
        assert not ann.index_ready
        assert ann.entry is not None and ann.entry.response_id == "r000000"
        assert ann.held_by is None
        # Not assigned to cy: everything is someone else's, and the lease on bob's item is
        # refused (the session shows who is on it).
        cy = ReviewSession(
            third, "cy", order="import", leases=Leases.for_review(third, "cy"), defer_index_above=0
        )
        assert cy.entry is None or cy.entry.response_id != "r000000" or cy.held_by is not None
        for session in (ann, bob, cy):
            session.close()
