"""`coder assign`: the unreviewed answers split among reviewers, a seeded share twice; each
reviewer's queue follows their assignment (library, CLI and the real review app)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from coder import review
from coder.assign import AssignError, assign, assignments_in_force, double_coded, parse_reviewers
from coder.cli import cli
from coder.review import ReviewIndex
from coder.store import Store
from schemas import Labels
from tests.review_data import build_project, review_app, small_codebook


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return build_project(tmp_path / "team.db", 50, codebook=small_codebook())


def test_every_unreviewed_answer_is_assigned_and_a_seeded_share_twice(store: Store) -> None:
    store.add_decision(response_id="r000000", reviewer="lead", action="accept",
                       labels=Labels(question="H1", themes=["data"]))
    result = assign(store, ["ann", "bob", "cy"], 0.2, seed=4)
    in_force = assignments_in_force(store)
    assert "r000000" not in in_force  # already reviewed
    assert len(in_force) == 49 == result.answers
    doubles = double_coded(store)
    assert len(doubles) == round(0.2 * 49) == result.double_coded
    assert all(len(set(pair)) == 2 for pair in doubles.values())
    # Pairs rotate: each of the three pairs shares 3 or 4 of the 10.
    assert sorted(Counter(doubles.values()).values()) == [3, 3, 4]
    loads = Counter(name for answer in in_force.values() for name in answer.reviewers)
    assert max(loads.values()) - min(loads.values()) <= 1
    # The same seed gives the same split; another seed another one.
    again = build_project(store.path.with_name("again.db"), 50, codebook=small_codebook())
    again.add_decision(response_id="r000000", reviewer="lead", action="accept",
                       labels=Labels(question="H1", themes=["data"]))
    assign(again, ["ann", "bob", "cy"], 0.2, seed=4)
    assert double_coded(again) == doubles
    other = build_project(store.path.with_name("other.db"), 50, codebook=small_codebook())
    assign(other, ["ann", "bob", "cy"], 0.2, seed=5)
    assert double_coded(other) != doubles


def test_a_new_run_replaces_the_assignment_of_what_is_still_unreviewed(store: Store) -> None:
    assign(store, ["ann", "bob"], 0.0, seed=1)
    store.add_decision(response_id="r000001", reviewer="ann", action="accept",
                       labels=Labels(question="H2", themes=["data"]))
    assign(store, ["cy"], 0.0)
    in_force = assignments_in_force(store)
    assert in_force["r000002"].reviewers == ("cy",)
    assert in_force["r000001"].reviewers in (("ann",), ("bob",))  # reviewed: kept from run one


def test_bad_requests_name_the_option(store: Store) -> None:
    with pytest.raises(AssignError, match="--overlap 1.5"):
        assign(store, ["ann", "bob"], 1.5)
    with pytest.raises(AssignError, match="at least two reviewers"):
        assign(store, ["ann"], 0.2)
    with pytest.raises(AssignError, match="given twice"):
        parse_reviewers("ann,bob,ann")
    with pytest.raises(AssignError, match="empty name"):
        parse_reviewers("ann,,bob")
    with pytest.raises(AssignError, match="no unreviewed answers for question H9"):
        assign(store, ["ann", "bob"], 0.0, question="H9")


def test_next_goes_through_your_answers_and_skips_the_others(store: Store) -> None:
    assign(store, ["ann", "bob"], 0.3, seed=2)
    index = ReviewIndex(store)
    order = review.order_entries(index.entries)
    in_force = assignments_in_force(store)
    position = review.next_unreviewed(order, "ann")
    seen = set()
    while position is not None:
        entry = order[position]
        assert "ann" in in_force[entry.response_id].reviewers
        seen.add(entry.response_id)
        review.record_decision(store, index, response_id=entry.response_id, reviewer="ann",
                               action="correct", labels=Labels(question=entry.question, themes=["data"]))
        position = review.next_unreviewed(order, "ann")
    assert seen == {rid for rid, answer in in_force.items() if "ann" in answer.reviewers}
    # Bob still has every one of his, the double-coded ones ann decided included.
    shared = {rid for rid, pair in double_coded(store).items()}
    bob_left = {entry.response_id for entry in order
                if entry.status("bob") == "unreviewed" and not entry.assigned_elsewhere("bob")}
    assert shared <= bob_left
    assert review.next_unreviewed(order, "bob") is not None


def test_unassigned_projects_behave_as_before(store: Store) -> None:
    index = ReviewIndex(store)
    order = review.order_entries(index.entries)
    assert all(entry.assigned == () for entry in order)
    assert review.next_unreviewed(order, "anyone") == 0


def test_double_coding_is_blind_to_the_partner_and_the_model(store: Store) -> None:
    assign(store, ["ann", "bob"], 1.0, seed=0, blind=True)
    response_id = "r000003"
    store.add_decision(response_id=response_id, reviewer="ann", action="note", note="ann thinks data")
    index = ReviewIndex(store)
    entry = index.by_id[response_id]
    item = review.load_item(store, entry, "bob")
    assert item.notes == []  # not ann's note
    assert item.proposal is None  # not the model's proposal
    assert item.labels.themes == []
    assert review.load_item(store, entry, "ann").notes == [("ann", "ann thinks data")]
    # Someone outside the pair (the lead) sees everything.
    lead = review.load_item(store, entry, "lead")
    assert lead.proposal is not None and lead.notes


def test_the_queue_table_hides_the_model_on_blind_double_coded_answers(store: Store) -> None:
    from review_tui.queue import queue_page
    from review_tui.session import ReviewSession

    assign(store, ["ann", "bob"], 1.0, seed=0, blind=True)
    rows = queue_page(ReviewSession(store, "bob"), 0)
    assert rows and all(row.confidence is None and row.themes == "" for row in rows)
    # The lead, outside the pair, sees the model's labels in the table.
    lead = queue_page(ReviewSession(store, "lead"), 0)
    assert any(row.confidence is not None for row in lead)


async def test_the_review_app_opens_on_the_reviewers_own_answer(store: Store) -> None:
    assign(store, ["ann", "bob"], 0.0, seed=9)
    mine = {rid for rid, answer in assignments_in_force(store).items() if answer.reviewers == ("bob",)}
    app = review_app(store, reviewer="bob")
    async with app.run_test(size=(120, 40)) as pilot:
        session = app.session  # type: ignore[attr-defined]
        for _ in range(3):
            assert session.entry.response_id in mine
            await pilot.press("a")
            await pilot.pause()
    decided = {d.response_id for d in store.decisions(reviewer="bob")}
    assert len(decided) == 3 and decided <= mine


def test_cli_assign_prints_and_stores(store: Store) -> None:
    path = str(store.path)
    store.close()
    result = CliRunner().invoke(cli, ["assign", "--reviewers", "ann,bob,cy", "--overlap", "0.2",
                                      "--seed", "3", "--db", path, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["answers"] == 50 and data["double_coded"] == 10
    assert sum(data["per_reviewer"].values()) == 60
    bad = CliRunner().invoke(cli, ["assign", "--reviewers", "ann", "--overlap", "0.2", "--db", path])
    assert bad.exit_code == 1 and "at least two reviewers" in bad.output


def test_an_open_session_sees_a_new_assignment_at_its_next_sync(store: Store) -> None:
    from review_tui.session import ReviewSession

    session = ReviewSession(store, "bob", order="import")
    assert not any(entry.assigned for entry in session.index.entries)
    assign(store, ["ann", "bob"], 0.0, seed=4)  # the lead splits the work meanwhile
    session.sync()
    theirs = {rid for rid, a in assignments_in_force(store).items() if a.reviewers == ("ann",)}
    assert theirs and all(session.index.by_id[rid].assigned == ("ann",) for rid in theirs)
    position = review.next_unreviewed(session.view, "bob")
    assert position is not None and session.view[position].response_id not in theirs
