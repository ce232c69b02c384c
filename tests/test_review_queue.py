"""The review library: queue index, order, filters, progress, bulk accept, adjudication."""

from __future__ import annotations

from pathlib import Path

import pytest

from coder import review
from coder.review import ReviewIndex, parse_filter
from coder.store import Store
from schemas import Labels
from tests.review_data import build_project, small_codebook


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return build_project(tmp_path / "queue.db", 40, codebook=small_codebook())


def test_index_matches_store(store: Store) -> None:
    index = ReviewIndex(store)
    proposals = store.current_proposals()
    assert len(index.entries) == store.count_responses() == 40
    for entry in index.entries:
        assert entry.proposal_id == proposals[entry.response_id].id
        assert entry.confidence == proposals[entry.response_id].confidence
    themes = index.proposed_themes(index.entries[:5])
    for entry in index.entries[:5]:
        assert list(themes[entry.response_id]) == proposals[entry.response_id].proposal.theme_codes  # type: ignore[union-attr]


def test_default_order_is_least_confident_first(store: Store) -> None:
    ordered = review.order_entries(ReviewIndex(store).entries)
    confidences = [entry.confidence for entry in ordered]
    assert confidences == sorted(confidences)  # type: ignore[type-var]
    by_import = review.order_entries(ordered, "import")
    assert [entry.position for entry in by_import] == list(range(40))


def test_parse_filter() -> None:
    parsed = parse_filter(
        "status:unreviewed q:H1 theme:data tag:#NHSSomerset r:ann disagree conf<0.6 conf>=0.1 leader"
    )
    assert (parsed.status, parsed.question, parsed.theme, parsed.tag, parsed.reviewer) == (
        "unreviewed",
        "H1",
        "data",
        "NHSSomerset",
        "ann",
    )
    assert parsed.disagreement and parsed.max_confidence == 0.6 and parsed.min_confidence == 0.1
    assert parsed.text == "leader"
    assert parse_filter(parsed.describe()) == parsed


def test_filters(store: Store) -> None:
    index = ReviewIndex(store)
    entries = index.entries

    def ids(text: str, reviewer: str = "ann") -> set[str]:
        return {
            e.response_id
            for e in review.filter_entries(index, entries, parse_filter(text), reviewer)
        }

    assert ids("question:H1") == {e.response_id for e in entries if e.question == "H1"}
    tagged = {r.id for r in store.responses() if "NHSSomerset" in r.tags}
    assert tagged and ids("tag:nhssomerset") == tagged
    with_data = {
        rid
        for rid, p in store.current_proposals().items()
        if "data" in p.proposal.theme_codes  # type: ignore[union-attr]
    }
    assert ids("theme:data") == with_data
    assert ids("Did not answer") == {r.id for r in store.responses() if r.text == "Did not answer."}
    assert ids("conf<0.3") == {e.response_id for e in entries if (e.confidence or 0) <= 0.3}

    first, second = entries[0].response_id, entries[1].response_id
    review.record_decision(
        store,
        index,
        response_id=first,
        reviewer="ann",
        action="correct",
        labels=Labels(question="H1", themes=["data"]),
    )
    review.record_decision(store, index, response_id=second, reviewer="ann", action="skip")
    assert ids("status:corrected") == {first}
    assert ids("status:skipped") == {second}
    assert ids("status:reviewed") == {first}
    assert first not in ids("status:unreviewed") and second not in ids("status:unreviewed")
    assert first in ids("theme:data")  # the reviewer's own labels count for them
    assert ids("reviewer:ann") == {first, second}
    # Another reviewer disagrees on the first item.
    review.record_decision(
        store,
        index,
        response_id=first,
        reviewer="bob",
        action="correct",
        labels=Labels(question="H1", themes=["funding"]),
    )
    assert ids("disagree") == {first}


def test_progress_and_acceptance_rate(store: Store) -> None:
    index = ReviewIndex(store)
    for entry in index.entries[:3]:
        item = review.load_item(store, entry, "ann")
        review.record_decision(
            store,
            index,
            response_id=entry.response_id,
            reviewer="ann",
            action="accept",
            labels=item.labels,
        )
    review.record_decision(
        store,
        index,
        response_id=index.entries[3].response_id,
        reviewer="ann",
        action="correct",
        labels=Labels(),
    )
    progress = review.progress(index, "ann")
    assert (progress.reviewed, progress.total) == (4, 40)
    assert progress.acceptance_rate == 0.75
    assert "4/40 reviewed" in progress.summary()


def test_undo_restores_previous_state_and_sync_sees_other_process(store: Store) -> None:
    index = ReviewIndex(store)
    rid = index.entries[0].response_id
    first = review.record_decision(
        store,
        index,
        response_id=rid,
        reviewer="ann",
        action="correct",
        labels=Labels(themes=["data"]),
    )
    second = review.record_decision(
        store,
        index,
        response_id=rid,
        reviewer="ann",
        action="correct",
        labels=Labels(themes=["funding"]),
    )
    assert review.undo(store, index, second, "ann") == rid
    assert index.by_id[rid].state("ann").labels_json == Labels(themes=["data"]).model_dump_json()
    assert review.undo(store, index, second, "ann") is None  # already undone
    assert review.undo(store, index, first, "ann") == rid
    assert index.by_id[rid].state("ann").status == "unreviewed"
    # A decision written through another connection shows up after sync().
    with Store(store.path) as other:
        other.add_decision(response_id=rid, reviewer="bob", action="accept", labels=Labels())
    assert review.undo(store, index, 10_000, "ann") is None
    assert rid in index.sync()
    assert index.by_id[rid].state("bob").status == "accepted"


def test_bulk_accept_only_touches_unreviewed_above_threshold(store: Store) -> None:
    index = ReviewIndex(store)
    reviewed = index.entries[-1]  # high confidence, already corrected by ann
    review.record_decision(
        store,
        index,
        response_id=reviewed.response_id,
        reviewer="ann",
        action="correct",
        labels=Labels(),
    )
    candidates = review.bulk_accept_candidates(index.entries, "ann", 0.7)
    assert reviewed not in candidates
    assert all((e.confidence or 0) >= 0.7 for e in candidates)
    written = review.bulk_accept(store, index, candidates, "ann")
    assert written == len(candidates) > 0
    final = store.final_labels("ann")
    for entry in candidates:
        decision = final[entry.response_id]
        assert decision.action == "bulk_accept"
        assert decision.proposal_id == entry.proposal_id
    assert final[reviewed.response_id].action == "correct"


def test_disagreements_and_adjudication(store: Store) -> None:
    index = ReviewIndex(store)
    a, b, c = (entry.response_id for entry in index.entries[:3])
    for rid in (a, b, c):
        review.record_decision(
            store,
            index,
            response_id=rid,
            reviewer="ann",
            action="correct",
            labels=Labels(themes=["data"]),
        )
    review.record_decision(
        store,
        index,
        response_id=a,
        reviewer="bob",
        action="correct",
        labels=Labels(themes=["funding"]),
    )
    review.record_decision(
        store,
        index,
        response_id=b,
        reviewer="bob",
        action="correct",
        labels=Labels(themes=["data"], quote=True),
    )  # quote flag is no disagreement
    assert review.two_reviewers(index) == ("ann", "bob")
    found = review.disagreements(index, "ann", "bob")
    assert [d.entry.response_id for d in found] == [a]
    review.record_decision(
        store,
        index,
        response_id=a,
        reviewer="cat",
        action="adjudicate",
        labels=Labels(themes=["funding"]),
    )
    assert review.disagreements(index, "ann", "bob") == []
    assert store.final_labels()[a].action == "adjudicate"


def test_export_labels(store: Store, tmp_path: Path) -> None:
    index = ReviewIndex(store)
    rid = index.entries[0].response_id
    review.record_decision(
        store,
        index,
        response_id=rid,
        reviewer="ann",
        action="correct",
        labels=Labels(question="H1", themes=["data"], quote=True),
    )
    path = tmp_path / "labels.jsonl"
    assert review.export_labels(store, str(path)) == 1
    import json

    (row,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert (row["response_id"], row["themes"], row["quote"], row["reviewer"]) == (
        rid,
        ["data"],
        True,
        "ann",
    )


def test_decisions_of_another_process_are_not_skipped(store: Store) -> None:
    index = ReviewIndex(store)
    mine, theirs = index.entries[0].response_id, index.entries[1].response_id
    with Store(store.path) as other:
        other.add_decision(response_id=theirs, reviewer="bob", action="accept", labels=Labels())
    review.record_decision(
        store, index, response_id=mine, reviewer="ann", action="accept", labels=Labels()
    )
    assert index.by_id[theirs].state("bob").status == "accepted"
    assert index.by_id[mine].state("ann").status == "accepted"
    assert index.sync() == set()


def test_parse_filter_refuses_misspelled_keys_and_statuses() -> None:
    with pytest.raises(review.FilterError, match="did you mean 'question'"):
        parse_filter("questoin:H3")
    with pytest.raises(review.FilterError, match="did you mean 'theme'"):
        parse_filter("status:skipped tehme:cost")
    with pytest.raises(review.FilterError, match="unknown status 'done'"):
        parse_filter("s:done")
    # A word with a colon that is not near any key stays a text search.
    assert parse_filter("re:referral http://x.org").text == "re:referral http://x.org"
    assert parse_filter("status:flagged").status == "flagged"


def test_check_filter_names_the_projects_questions(store: Store) -> None:
    review.check_filter(store, parse_filter("question:H1"))
    with pytest.raises(review.FilterError, match="no answers to question 'H9'"):
        review.check_filter(store, parse_filter("question:H9"))
