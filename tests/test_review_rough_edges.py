"""The rough edges a new reviewer hit in a first session, each driven through the real app."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Input

from coder import review
from coder.store import Store
from review_tui.ask_bar import AskBar
from review_tui.confirm import ConfirmScreen
from review_tui.help_screen import HelpScreen, key_name
from review_tui.queue_rows import ROW_COLUMN, shown_field
from review_tui.queue_screen import QueueScreen
from review_tui.review_screen import ReviewScreen
from schemas import Codebook, Proposal, Question, Response, StanceScale, StanceValue, Theme
from tests.review_data import review_app, screen_text

SIZE = (120, 40)


def workshop_codebook() -> Codebook:
    """Two hypotheses with a stance and a 'what is missing?' question without one."""
    return Codebook(
        name="workshop",
        questions=[
            Question(id="H1", short_name="Pathways", text="Pathway approaches speed adoption."),
            Question(id="H2", short_name="Leaders", text="Clinical leaders drive adoption."),
            Question(
                id="Q10", short_name="Missing", text="What is missing?", has_stance=False
            ),
        ],
        stance=StanceScale(
            values=[
                StanceValue(id="resonates", label="Resonates"),
                StanceValue(id="does_not_resonate", label="Does not resonate"),
            ]
        ),
        themes=[
            Theme(id="leadership", label="Clinical leadership", definition="A clinical lead."),
            Theme(id="funding", label="Funding", definition="Money and budgets."),
        ],
    )


ANSWERS = [
    ("a1", "H1", "Yes", 0.10),
    ("a2", "H1", "yes.", 0.20),
    ("a3", "H1", "YES!", 0.30),
    ("a4", "H1", "Our lead GP pushed the pathway through and funding followed.", 0.40),
    ("a5", "H2", "Not really, leaders change too often.", 0.50),
    ("a6", "Q10", "Digital maturity of the trust is missing from the list.", 0.60),
]


def workshop_project(path: Path) -> Store:
    store = Store(path)
    version = store.save_codebook(workshop_codebook(), source="test")
    store.add_responses([Response(id=rid, text=text, question=q) for rid, q, text, _ in ANSWERS])
    store.add_proposals(
        [
            {
                "response_id": rid,
                "backend": "local",
                "model": "test",
                "codebook_version": version,
                "proposal": Proposal(
                    response_id=rid,
                    question=q,
                    stance=None if q == "Q10" else "does_not_resonate",
                    confidence=confidence,
                ),
            }
            for rid, q, _, confidence in ANSWERS
        ]
    )
    return store


async def test_queue_opens_with_the_filter_focused(tmp_path: Path) -> None:
    store = workshop_project(tmp_path / "w.db")
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        assert isinstance(app.screen, QueueScreen)
        assert app.screen.focused is app.screen.query_one("#queue-filter", Input)
        # 'o' inside 'question:H2' is a letter of the filter, not the sort key.
        await pilot.press(*"question:H2", "enter")
        assert app.session.order_name == "confidence"
        assert [entry.response_id for entry in app.session.view] == ["a5"]
        assert app.screen.focused is app.screen.query_one(DataTable)


async def test_queue_shows_the_stance(tmp_path: Path) -> None:
    store = workshop_project(tmp_path / "w.db")
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        table = app.screen.query_one(DataTable)
        (header,) = [column.label for column in table.columns.values()]
        assert shown_field(header, "stance") == "stance"
        # As drawn: the stance column is 12 cells wide.
        assert shown_field(table.get_cell("a1", ROW_COLUMN), "stance") == "does_not_res"
        assert shown_field(table.get_cell("a6", ROW_COLUMN), "stance") == ""


async def test_same_text_then_group_stance_is_one_undo_step(tmp_path: Path) -> None:
    store = workshop_project(tmp_path / "w.db")
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l", "down")  # to the table; a1 "Yes" is first (least confident)
        await pilot.press("equals_sign")
        assert sorted(e.response_id for e in app.session.view) == ["a1", "a2", "a3"]
        assert "same:yes" in app.screen.query_one("#queue-filter", Input).value
        # g → stance (3rd kind) → 'resonates' (1st value) → confirm.
        await pilot.press("g", "3", "1")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        decisions = store.decisions()
        assert sorted(d.response_id for d in decisions) == ["a1", "a2", "a3"]
        assert {d.action for d in decisions} == {"correct"}
        assert {d.reason_code for d in decisions} == {"group"}
        assert all(d.labels is not None and d.labels.stance == "resonates" for d in decisions)
        # The model's proposals are untouched.
        assert store.current_proposals()["a1"].proposal.stance == "does_not_resonate"  # type: ignore[union-attr]
        await pilot.press("u")
        undos = [d for d in store.decisions() if d.action == "undo"]
        assert len(undos) == 3
        assert all(entry.status("ann") == "unreviewed" for entry in app.session.view)


async def test_group_stance_skips_a_question_without_stance(tmp_path: Path) -> None:
    store = workshop_project(tmp_path / "w.db")
    app = review_app(store)
    async with app.run_test(size=SIZE):
        change = review.GroupChange("stance", "resonates")
        touched = {entry.response_id for entry in app.session.group_candidates(change)}
        assert "a6" not in touched and "a1" in touched


async def test_cancelled_group_action_writes_nothing(tmp_path: Path) -> None:
    store = workshop_project(tmp_path / "w.db")
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l", "down", "g", "1")  # accept every proposal shown...
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # ...then no
        assert store.decisions() == []


async def test_help_shows_keys_as_printed_on_the_keyboard(tmp_path: Path) -> None:
    store = workshop_project(tmp_path / "w.db")
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        assert "full_s" not in text and "← comma" not in text
        assert "← ," in text and "→ ." in text
    assert key_name("full_stop") == "."
    assert key_name("ctrl+z") == "Ctrl+Z"
    assert key_name("comma") == ","


async def test_one_quote_is_one_quote(tmp_path: Path) -> None:
    store = workshop_project(tmp_path / "w.db")
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f")
        text = screen_text(app)
        assert "1 quote" in text and "1 quotes" not in text


async def test_edited_marker_survives_a_quote_flag(tmp_path: Path) -> None:
    store = workshop_project(tmp_path / "w.db")
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("1")  # toggle a theme: the draft is edited
        assert "· edited" in screen_text(app)
        await pilot.press("f")
        assert "· edited" in screen_text(app)
        (flag,) = store.decisions()
        assert flag.action == "flag_quote"
        # The flag did not commit the unsaved theme edit behind the reviewer's back.
        assert flag.labels is not None and flag.labels.themes == []
        await pilot.press("a", "enter")  # accept (and the suggested reason): a correction
        assert [d.action for d in store.decisions()][-1] == "correct"


async def test_a_question_without_stance_does_not_ask_for_one(tmp_path: Path) -> None:
    store = workshop_project(tmp_path / "w.db")
    app = review_app(store, order="import")
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, ReviewScreen)
        assert screen.check_action("stance", ()) is True  # a1 is H1
        app.session.go_to("a6")
        screen.show_item()
        await pilot.pause()
        assert screen.check_action("stance", ()) is False
        assert "not asked for this question" in screen_text(app)
        await pilot.press("s")
        assert isinstance(app.screen, ReviewScreen)
        assert not screen.query_one(AskBar).asking  # no stance asked


async def test_moving_an_answer_to_a_no_stance_question_drops_its_stance(tmp_path: Path) -> None:
    store = workshop_project(tmp_path / "w.db")
    app = review_app(store)
    async with app.run_test(size=SIZE):
        assert app.session.draft.stance == "does_not_resonate"
        app.session.set_question("Q10")
        assert app.session.draft.stance is None


async def test_quit_summary_says_what_was_done_and_what_is_left(tmp_path: Path) -> None:
    store = workshop_project(tmp_path / "w.db")
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", "a", "k")
        summary = app.session.summary()
    assert "3 decision(s)" in summary
    assert "2 accepted unchanged" in summary and "1 skipped" in summary
    assert "2 of 6 reviewed, 4 left" in summary


def test_reviewer_sessions_split_on_a_long_pause(tmp_path: Path) -> None:
    store = workshop_project(tmp_path / "w.db")
    for rid, stamp in [("a1", "10:00"), ("a2", "10:05"), ("a3", "13:00")]:
        decision_id = store.add_decision(response_id=rid, reviewer="ann", action="accept")
        store.db.conn.execute(
            "update decisions set created_at = ? where id = ?",
            [f"2026-11-29T{stamp}:00+00:00", decision_id],
        )
    sessions = review.reviewer_sessions(store)
    assert [(s.reviewer, s.decisions) for s in sessions] == [("ann", 2), ("ann", 1)]
    assert "ann 2026-11-29 10:00-10:05 · 2 decisions" in sessions[0].describe()


def test_status_lists_review_sessions(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from coder.cli import cli

    store = workshop_project(tmp_path / "w.db")
    app_store_path = str(store.path)
    store.add_decision(response_id="a1", reviewer="ann", action="accept")
    store.add_decision(response_id="a2", reviewer="ann", action="correct")
    store.close()
    result = CliRunner().invoke(cli, ["status", "--db", app_store_path])
    assert result.exit_code == 0, result.output
    assert "review sessions" in result.output
    assert "ann " in result.output and "2 decisions" in result.output
    assert "50% accepted unchanged" in result.output


async def test_control_characters_in_an_answer_are_shown_not_obeyed(tmp_path: Path) -> None:
    store = workshop_project(tmp_path / "w.db")
    store.add_responses([Response(id="esc", text="Clear \x1b[2J the screen", question="H1")])
    app = review_app(store)
    async with app.run_test(size=SIZE):
        app.session.go_to("esc")
        app.redraw()
        text = screen_text(app)
        assert "\x1b" not in text and "\\x1b[2J" in text


def test_responses_command_prints_markup_and_escapes_as_text(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from coder.cli import cli

    store = workshop_project(tmp_path / "w.db")
    store.add_responses(
        [Response(id="link", text="[link=http://x]click[/link] \x1b[31mred", question="H1")]
    )
    path = str(store.path)
    store.close()
    result = CliRunner().invoke(cli, ["responses", "--db", path, "--limit", "50"])
    assert result.exit_code == 0, result.output
    assert "[link=http://x]click[/link]" in result.output
    assert "\x1b[31m" not in result.output and "\\x1b[31mred" in result.output


async def test_a_typo_in_the_queue_filter_says_so_and_keeps_the_queue(tmp_path: Path) -> None:
    store = workshop_project(tmp_path / "w.db")
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        before = [entry.response_id for entry in app.session.view]
        await pilot.press(*"questoin:H2", "enter")
        assert [entry.response_id for entry in app.session.view] == before
        assert any("did you mean 'question'" in str(n.message) for n in app._notifications)
        # The box keeps the typo, focused, to be fixed.
        box = app.screen.query_one("#queue-filter", Input)
        assert box.value == "questoin:H2" and app.screen.focused is box
