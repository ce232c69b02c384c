"""The review screen driven by its keys: what the store holds and what the screen shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from coder.store import Store
from review_tui.app import ReviewApp
from review_tui.ask_bar import AskBar
from review_tui.confirm import ConfirmScreen
from review_tui.review_screen import ReviewScreen
from tests.review_data import build_project, review_app, screen_text, small_codebook

SIZE = (120, 40)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return build_project(tmp_path / "review.db", 12, codebook=small_codebook())


def shown_id(app: ReviewApp) -> str:
    item = app.session.item
    assert item is not None
    return item.response.id


async def test_accept_writes_decision_and_moves_to_next_unreviewed(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        first = shown_id(app)
        proposal = store.current_proposals()[first]
        await pilot.press("a")
        decisions = store.decisions()
        assert [(d.response_id, d.action, d.reviewer) for d in decisions] == [
            (first, "accept", "ann")
        ]
        assert decisions[0].proposal_id == proposal.id
        assert decisions[0].labels is not None
        assert sorted(decisions[0].labels.themes) == sorted(proposal.proposal.theme_codes)  # type: ignore[union-attr]
        second = shown_id(app)
        assert second != first
        assert second in screen_text(app)
        # Enter accepts too.
        await pilot.press("enter")
        assert len(store.decisions()) == 2
        # The proposal is never changed.
        assert store.current_proposals()[first] == proposal


async def test_least_confident_first(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE):
        confidences = [p.confidence for p in store.current_proposals().values()]
        assert app.session.item is not None
        assert app.session.item.proposal is not None
        assert app.session.item.proposal.confidence == min(confidences)


async def test_theme_toggle_asks_reason_and_records_correction(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        first = shown_id(app)
        proposed = set(app.session.draft.themes)
        themes = [theme.id for theme in app.session.applicable_themes()]
        await pilot.press("1")
        expected = proposed ^ {themes[0]}
        assert set(app.session.draft.themes) == expected
        assert "edited" in screen_text(app)
        await pilot.press("a")
        # The reason is asked inline (no screen switch): the review keys are off meanwhile.
        assert app.screen.query_one(AskBar).asking
        await pilot.press("a", "2")  # keys of the review screen do nothing meanwhile
        assert app.screen.query_one(AskBar).asking
        assert set(app.session.draft.themes) == expected and not store.decisions()
        await pilot.press("m")
        assert not app.screen.query_one(AskBar).asking
        (decision,) = store.decisions()
        assert decision.response_id == first
        assert decision.action == "correct"
        assert decision.reason_code == "missed_theme"
        assert decision.labels is not None and set(decision.labels.themes) == expected


async def test_reason_modal_is_skippable(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("1", "a", "escape")
        (decision,) = store.decisions()
        assert decision.action == "correct"
        assert decision.reason_code is None


async def test_number_keys_beyond_the_question_do_nothing(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        count = len(app.session.applicable_themes())
        assert count < 9
        before = list(app.session.draft.themes)
        await pilot.press("9")
        assert app.session.draft.themes == before
        screen = app.screen
        assert screen.check_action("theme", ("9",)) is False
        assert screen.check_action("theme", ("1",)) is True


async def test_stance_question_and_relevance(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        first = shown_id(app)
        await pilot.press("s")
        await pilot.press("3")  # third stance value
        stance = store.codebook()[1].stance_ids[2]
        assert app.session.draft.stance == stance
        await pilot.press("h", "2")  # second question
        assert app.session.draft.question == "H2"
        assert "pathway" not in app.session.draft.themes  # an H1-only theme is dropped
        await pilot.press("x")
        await pilot.press(*"blank", "enter")
        assert app.session.draft.relevant is False
        assert app.session.draft.relevance_reason == "blank"
        assert app.session.draft.themes == []
        await pilot.press("a", "r")
        (decision,) = store.decisions()
        assert decision.response_id == first
        assert decision.reason_code == "not_relevant"
        labels = decision.labels
        assert labels is not None
        assert (labels.stance, labels.question, labels.relevant) == (stance, "H2", False)


async def test_quote_note_skip(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        first = shown_id(app)
        await pilot.press("f")
        await pilot.press("n", *"great quote", "enter")
        assert "Note (ann): great quote" in screen_text(app)
        assert "★ quote" in screen_text(app)
        await pilot.press("k")
        actions = [(d.response_id, d.action) for d in store.decisions()]
        assert actions == [(first, "flag_quote"), (first, "note"), (first, "skip")]
        assert store.decisions()[0].labels.quote is True  # type: ignore[union-attr]
        assert store.decisions()[1].note == "great quote"
        assert shown_id(app) != first
        entry = app.session.index.by_id[first]
        assert entry.state("ann").status == "skipped"
        assert entry.state("ann").flagged


async def test_undo_several_steps_appends_undo_decisions(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        first = shown_id(app)
        await pilot.press("a")
        second = shown_id(app)
        await pilot.press("a")
        third = shown_id(app)
        await pilot.press("u")
        assert shown_id(app) == second
        await pilot.press("u")
        assert shown_id(app) == first
        decisions = store.decisions()
        assert [d.action for d in decisions] == ["accept", "accept", "undo", "undo"]
        assert decisions[2].undoes == decisions[1].id
        assert decisions[3].undoes == decisions[0].id
        assert store.final_labels("ann") == {}
        # The incremental progress counts agree with a full recount.
        from coder import review

        counted = app.session.progress()
        recount = review.progress(app.session.index, "ann")
        assert (
            (counted.reviewed, counted.accepted) == (recount.reviewed, recount.accepted) == (0, 0)
        )
        assert app.session.index.by_id[first].state("ann").status == "unreviewed"
        # Accepting again moves to the next unreviewed: the second, not the third.
        await pilot.press("a")
        assert shown_id(app) == second
        assert third != second


async def test_undo_edit_before_decisions(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        before = list(app.session.draft.themes)
        await pilot.press("1", "2")
        await pilot.press("u", "u")
        assert app.session.draft.themes == before
        assert store.decisions() == []
        assert app.screen.check_action("undo", ()) is False


async def test_previous_next_and_leaving_a_changed_item_saves_it(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        first = shown_id(app)
        await pilot.press("right")
        assert shown_id(app) != first
        await pilot.press("left")
        assert shown_id(app) == first
        assert app.screen.check_action("previous", ()) is False
        await pilot.press("1", "right")
        (decision,) = store.decisions()
        assert (decision.response_id, decision.action) == (first, "correct")


async def test_reopening_resumes_at_first_unreviewed(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", "a", "a")
        fourth = shown_id(app)
        await pilot.press("1")  # an unsaved edit ...
        await pilot.press("q")  # ... is saved on quit
    assert len(store.decisions()) == 4
    reopened = review_app(Store(store.path))
    async with reopened.run_test(size=SIZE):
        assert shown_id(reopened) != fourth
        reviewed = set(store.final_labels("ann"))
        assert shown_id(reopened) not in reviewed
        assert len(reviewed) == 4


async def test_blind_hides_proposal_and_starts_blank(store: Store) -> None:
    app = review_app(store, blind=True)
    async with app.run_test(size=SIZE) as pilot:
        text = screen_text(app)
        assert "MODEL PROPOSAL hidden" in text
        assert "Rationale" not in text
        assert app.session.draft.themes == []
        await pilot.press("1", "a")
        (decision,) = store.decisions()
        assert decision.action == "correct"
        assert isinstance(app.screen, ReviewScreen)  # no reason modal when blind
        # Other reviewers' work stays hidden: no adjudication, no filter by reviewer.
        assert app.screen.check_action("adjudicate", ()) is False
        app.apply_filter("reviewer:bob disagree")
        assert app.session.queue_filter.reviewer is None
        assert not app.session.queue_filter.disagreement


async def test_help_definitions_and_footer(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        text = screen_text(app)
        for words in ("Accept the labels", "Undo", "Accept proposals above", "Take A", "Ctrl+P"):
            assert words in text
        await pilot.press("escape", "d")
        text = screen_text(app)
        assert "include: a clinician champions the work" in text
        assert "exclude: managers only" in text
        await pilot.press("escape")
        assert isinstance(app.screen, ReviewScreen)
        # Before any decision there is nothing to undo: the footer does not offer it.
        assert app.screen.check_action("undo", ()) is False
        await pilot.press("a")
        assert app.screen.check_action("undo", ()) is True


async def test_theme_picker_filters_by_typing(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        had_funding = "funding" in app.session.draft.themes
        await pilot.press("t", *"fund", "enter")
        assert ("funding" in app.session.draft.themes) is not had_funding


async def test_queue_filter_bulk_accept_with_confirmation(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        await pilot.press("slash", *"question:H1", "enter")
        assert all(entry.question == "H1" for entry in app.session.view)
        eligible = [e for e in app.session.view if e.confidence is not None and e.confidence >= 0.5]
        assert eligible
        await pilot.press("b")
        await pilot.press(*"0.5", "enter")  # the default threshold is selected: typing replaces it
        assert isinstance(app.screen, ConfirmScreen)
        assert f"{len(eligible)} item(s) will change" in screen_text(app)
        await pilot.press("y")
        decisions = store.decisions()
        assert len(decisions) == len(eligible)
        assert {d.action for d in decisions} == {"bulk_accept"}
        assert {d.response_id for d in decisions} == {e.response_id for e in eligible}
        # Cancelling writes nothing.
        await pilot.press("b", *"0", "enter", "n")
        assert len(store.decisions()) == len(eligible)


async def test_queue_enter_opens_item(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        # The filter has focus when the queue opens; the first ↓ moves to the table.
        await pilot.press("l", "down", "down", "down", "enter")
        assert isinstance(app.screen, ReviewScreen)
        assert app.session.position == 2


async def test_keymap_remaps_a_binding(store: Store) -> None:
    app = review_app(store, keymap={"review.skip": "z"})
    async with app.run_test(size=SIZE) as pilot:
        first = shown_id(app)
        await pilot.press("z")
        assert [(d.response_id, d.action) for d in store.decisions()] == [(first, "skip")]


async def test_long_response_pages_and_says_there_is_more(tmp_path: Path) -> None:
    from schemas import Proposal, Response

    store = build_project(tmp_path / "long.db", 2, codebook=small_codebook())
    text = " ".join(f"Sentence {number} about clinical leaders." for number in range(200))
    store.add_responses([Response(id="long", text=text, question="H1")])
    store.add_proposal(
        response_id="long",
        backend="local",
        model="test",
        codebook_version=1,
        proposal=Proposal(response_id="long", question="H1", confidence=0.0),
    )
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        assert shown_id(app) == "long"
        assert "more line(s)" in screen_text(app)
        assert "Sentence 0 " in screen_text(app)
        await pilot.press("pagedown")
        assert "Sentence 0 " not in screen_text(app)
        await pilot.press("end")
        assert "more line(s)" not in screen_text(app)
        assert "Sentence 199 " in screen_text(app)
        await pilot.press("a")  # the next item starts at its top
        pane = app.screen.query_one("#response-pane")
        assert shown_id(app) != "long", shown_id(app)
        assert pane.top == 0  # type: ignore[attr-defined]
