"""The review screen: one response at a time, the model's proposal beside it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen

from review_tui.ask_bar import AskBar, Choice
from review_tui.definitions_screen import DefinitionsScreen
from review_tui.footer import KeyFooter
from review_tui.pickers import CHOICE_KEYS, ThemePicker
from review_tui.proposal_view import ProposalView
from review_tui.reason import reason_choices
from review_tui.response_view import ResponseView
from review_tui.session import ReviewSession
from review_tui.status_bar import StatusBar

NUMBER_KEYS = "1234567890"


def _theme_bindings() -> list[Binding]:
    bindings = [
        Binding(
            "1",
            "theme(1)",
            "Themes",
            key_display="1-0",
            id="review.theme",
            tooltip="Toggle theme 1-10 of this question",
        )
    ]
    for key in NUMBER_KEYS[1:]:
        bindings.append(Binding(key, f"theme({key})", f"Theme {key}", show=False))
    return bindings


def _key(keys: str, action: str, description: str, tooltip: str, **options: Any) -> Binding:
    """A binding of this screen, its id ``review.<action>`` (what a keymap remaps)."""
    return Binding(keys, action, description, id=f"review.{action}", tooltip=tooltip, **options)


class ReviewScreen(Screen[None]):
    """Accept, correct, skip or flag each response; every decision is saved at once."""

    BINDINGS = [
        _key(
            "a,enter",
            "accept",
            "Accept",
            "Accept the labels shown, go to next unreviewed",
            key_display="a/⏎",
        ),
        *_theme_bindings(),
        _key("t", "pick_theme", "Pick", "Pick any theme by name (type to filter)"),
        _key("s", "stance", "Stance", "Set the stance"),
        _key("h", "question", "Hyp", "Set the hypothesis the response speaks to"),
        _key("x", "relevance", "Exclude", "Exclude as not relevant, with a reason"),
        _key("f", "quote", "Quote", "Flag / unflag as a quote for the report"),
        _key("n", "note", "Note", "Add a note to the response"),
        _key("k", "skip", "Skip", "Skip for now (see filter status:skipped)"),
        _key("u,ctrl+z", "undo", "Undo", "Undo last edit, then decisions one by one"),
        _key("left,comma", "previous", "Prev", "Previous item in the queue", show=False),
        _key(
            "right,full_stop", "next", "Next", "Next item in the queue, reviewed or not", show=False
        ),
        Binding(
            "right_square_bracket",
            "page_proposal(1)",
            "Labels ↓",
            show=False,
            key_display="] [",
            tooltip="Page the proposal / labels pane down, up",
        ),
        Binding("left_square_bracket", "page_proposal(-1)", "Labels ↑", show=False),
        _key("d", "definitions", "Defs", "Theme definitions, criteria and examples"),
        _key("l,tab", "queue", "Queue", "Queue: list, sort, filter, bulk accept", key_display="l"),
        _key("j", "adjudicate", "Adjudicate", "Adjudicate where two reviewers differ", show=False),
        _key("question_mark,f1", "help", "Help", "Every key (this screen)", key_display="?"),
        _key("q", "quit", "Quit", "Quit (nothing is lost)"),
    ]

    def __init__(self, session: ReviewSession) -> None:
        super().__init__()
        self.session = session
        self._shown_response: str | None = None
        self._shown_item: object = None  # the ReviewItem drawn in the response pane
        self._signature: tuple[object, ...] = ()
        self._styled_theme: str | None = None  # the theme the nodes were last styled in

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status-bar")
        with Horizontal(id="review-body"):
            yield ResponseView(id="response-pane")
            yield ProposalView(id="proposal-pane")
        yield AskBar(id="ask-bar")
        yield KeyFooter(compact=True)

    @property
    def ask_bar(self) -> AskBar:
        """The bar that asks the reason, stance, hypothesis, note or exclusion."""
        return self.query_one(AskBar)

    def on_mount(self) -> None:
        self.query_one(ResponseView).focus()
        self.show_item()

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        # As on the queue screen: Textual restyles every node of a resumed screen, a cost
        # paid on every return from the queue or a picker; styles change only with the theme.
        if self.app.theme == self._styled_theme:
            event.refresh_styles = False
        self._styled_theme = self.app.theme
        # Whatever happened meanwhile (an item opened from the queue, a group action)
        # reloaded the session's item, which show_item notices: no forced second redraw.
        self.show_item()

    # --- drawing ---------------------------------------------------------------------
    def show_item(self, force: bool = False) -> None:
        """Redraw what changed: the response only when the item was (re)loaded."""
        session = self.session
        item = session.item
        response_id = item.response.id if item else None
        if force or item is not self._shown_item:
            self.query_one(ResponseView).show(item, session.codebook, session.blind)
            if session.held_by and response_id != self._shown_response:
                self.notify(f"{session.held_by} is on this one.", severity="warning")
            self._shown_response = response_id
            self._shown_item = item
        self.query_one(ProposalView).show(
            item, session.draft, session.codebook, session.reviewer, session.dirty, session.blind
        )
        self.query_one(StatusBar).show(session)
        # The footer rebuilds itself on every refresh_bindings (tens of ms), so only ask
        # for it when the set of working keys has changed.
        signature = self._bindings_signature()
        if signature != self._signature:
            self._signature = signature
            self.refresh_bindings()

    def _bindings_signature(self) -> tuple[object, ...]:
        session = self.session
        return (
            session.item is not None,
            min(len(session.applicable_themes()), 10),
            session.can_undo,
            session.codebook.has_stance(session.draft.question),
            session.position > 0,
            session.position < len(session.view) - 1,
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide keys that do nothing right now (the footer shows only working keys)."""
        session = self.session
        has_item = session.item is not None
        if action == "theme":
            number = int(str(parameters[0])) if parameters else 1
            return has_item and (number or 10) <= len(session.applicable_themes())
        if action in (
            "accept",
            "pick_theme",
            "stance",
            "question",
            "relevance",
            "quote",
            "note",
            "skip",
            "definitions",
        ):
            if action == "stance" and not session.codebook.has_stance(session.draft.question):
                return False  # no scale, or a question that asks for ideas (Q10)
            return has_item
        if action == "adjudicate":
            return not session.blind
        if action == "undo":
            return session.can_undo
        if action == "previous":
            return has_item and session.position > 0
        if action == "next":
            return has_item and session.position < len(session.view) - 1
        return True

    # --- deciding --------------------------------------------------------------------
    def action_accept(self) -> None:
        session = self.session
        if session.needs_reason():
            # Inline, not a modal screen: the reason is asked on most corrections.
            self.query_one(AskBar).ask_choice(
                "Why change the model's labels?",
                reason_choices(),
                self._accept_with,
                enter=True,
                on_enter=session.suggested_reason(),
                keys_line="[b]Esc[/b] / [b]space[/b] skip",
                cancel_keys=("escape", "space"),
            )
        else:
            self._accept_with(None)

    def _accept_with(self, reason_code: str | None) -> None:
        self.session.accept_and_next(reason_code)
        self.app.after_decision()  # type: ignore[attr-defined]
        self.show_item()

    def action_theme(self, number: str) -> None:
        theme_id = self.session.toggle_theme_number(int(number))
        if theme_id is None:
            self.notify(f"No theme {number} for this question.", severity="warning")
        self.show_item()

    def action_pick_theme(self) -> None:
        def picked(theme_id: str | None) -> None:
            if theme_id:
                self.session.toggle_theme(theme_id)
                self.show_item()

        self.app.push_screen(
            ThemePicker(self.session.applicable_themes(), set(self.session.draft.themes)), picked
        )

    def action_stance(self) -> None:
        codebook = self.session.codebook
        if codebook.stance is None or not codebook.has_stance(self.session.draft.question):
            return
        choices = [(value.id, value.label or value.id) for value in codebook.stance.values]

        def picked(stance: str | None) -> None:
            if stance:
                self.session.set_stance(stance)
                self.show_item()

        self._ask_choice("Stance", choices, self.session.draft.stance, picked)

    def action_question(self) -> None:
        codebook = self.session.codebook
        choices = [
            (question.id, f"{question.id} {question.short_name or ''} — {question.text[:70]}")
            for question in codebook.questions
        ]

        def picked(question: str | None) -> None:
            if question:
                self.session.set_question(question)
                self.show_item()

        self._ask_choice("Hypothesis (question)", choices, self.session.draft.question, picked)

    def _ask_choice(
        self,
        title: str,
        choices: list[tuple[str, str]],
        current: str | None,
        picked: Callable[[str | None], None],
    ) -> None:
        """One key per choice (1-9, 0, then letters), asked in the bar under the panes."""
        keyed = [
            Choice(key, value, label)
            for key, (value, label) in zip(CHOICE_KEYS, choices, strict=False)
        ]
        self.query_one(AskBar).ask_choice(title, keyed, picked, current=current)

    def action_relevance(self) -> None:
        session = self.session
        if not session.draft.relevant:
            session.set_relevant(True)
            self.show_item()
            return
        rule = session.codebook.relevance
        hint = rule.description if rule else ""

        def answered(reason: str | None) -> None:
            if reason is not None:
                session.set_relevant(False, reason)
                self.show_item()

        self.query_one(AskBar).ask_text(
            "Exclude as not relevant: why?", answered, placeholder="e.g. did not answer", hint=hint
        )

    def action_quote(self) -> None:
        flagged = self.session.toggle_quote()
        self.notify("Flagged as a quote for the report." if flagged else "Quote flag removed.")
        self.show_item()

    def action_note(self) -> None:
        def answered(text: str | None) -> None:
            if text:
                self.session.add_note(text)
                self.notify("Note saved.")
                self.show_item()

        self.query_one(AskBar).ask_text("Note on this response", answered)

    def action_skip(self) -> None:
        self.session.skip()
        self.app.after_decision()  # type: ignore[attr-defined]
        self.show_item()

    def action_undo(self) -> None:
        message = self.session.undo()
        self.notify(message.capitalize() + ".")
        self.show_item()

    def action_previous(self) -> None:
        self.session.step(-1)
        self.show_item()

    def action_next(self) -> None:
        self.session.step(+1)
        self.show_item()

    def action_page_proposal(self, pages: int) -> None:
        self.query_one(ProposalView).action_scroll_page(int(pages))

    # --- other screens -----------------------------------------------------------------
    def action_definitions(self) -> None:
        session = self.session
        self.app.push_screen(
            DefinitionsScreen(session.codebook, session.draft.question, set(session.draft.themes))
        )

    def action_queue(self) -> None:
        self.app.open_queue()  # type: ignore[attr-defined]

    def action_adjudicate(self) -> None:
        self.app.open_adjudication()  # type: ignore[attr-defined]

    def action_help(self) -> None:
        self.app.open_help()  # type: ignore[attr-defined]

    async def action_quit(self) -> None:
        await self.app.action_quit()
