"""Adjudication: the model and two reviewers side by side where the reviewers differ."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from coder import review
from coder.review import Disagreement
from review_tui.footer import KeyFooter
from review_tui.session import ReviewSession
from schemas import Codebook, Labels


def _labels_cell(labels: Labels | None, codebook: Codebook, other: set[str]) -> Text:
    if labels is None:
        return Text("—", style="dim")
    out = Text()
    out.append(f"{labels.question or '—'} · {labels.stance or '—'}\n", style="bold")
    if not labels.relevant:
        out.append(f"not relevant: {labels.relevance_reason or ''}\n", style="bold red")
    for theme_id in labels.themes:
        try:
            label = codebook.theme(theme_id).label
        except KeyError:
            label = theme_id
        out.append(f"• {label}\n", style="" if theme_id in other else "bold yellow")
    if labels.quote:
        out.append("★ quote\n", style="yellow")
    return out


class AdjudicationScreen(Screen[None]):
    """Pick the final labels: the model's (m), reviewer A's (1) or B's (2)."""

    BINDINGS = [
        Binding("1", "choose('a')", "Take A", id="adjudicate.a"),
        Binding("2", "choose('b')", "Take B", id="adjudicate.b"),
        Binding("m", "choose('model')", "Take model", id="adjudicate.model"),
        Binding(
            "e",
            "edit",
            "Edit in review",
            id="adjudicate.edit",
            tooltip="Code it yourself in the review screen",
        ),
        Binding("right,n", "step(1)", "Next", key_display="→", id="adjudicate.next"),
        Binding("left,p", "step(-1)", "Prev", key_display="←", id="adjudicate.previous"),
        Binding("escape,q", "back", "Back", id="adjudicate.back"),
    ]

    def __init__(self, session: ReviewSession, first: str | None, second: str | None) -> None:
        super().__init__()
        self.session = session
        self.first = first
        self.second = second
        self.items: list[Disagreement] = []
        self.position = 0

    def compose(self) -> ComposeResult:
        yield Static(id="adjudication-title")
        with VerticalScroll(id="adjudication-body"):
            yield Static(id="adjudication-text")
            yield Static(id="adjudication-table")
        yield KeyFooter(compact=True)

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        self.session.sync()
        pair = (self.first, self.second) if self.first and self.second else None
        pair = pair or review.two_reviewers(self.session.index)
        if pair:
            self.first, self.second = pair
            self.items = review.disagreements(self.session.index, *pair)
        else:
            self.items = []
        self.position = max(0, min(self.position, len(self.items) - 1))
        self.show()

    def current(self) -> Disagreement | None:
        return self.items[self.position] if self.items else None

    def show(self) -> None:
        title = self.query_one("#adjudication-title", Static)
        text = self.query_one("#adjudication-text", Static)
        table_widget = self.query_one("#adjudication-table", Static)
        item = self.current()
        if item is None or not self.first or not self.second:
            title.update(Text(" Adjudication: nothing to adjudicate ", style="bold reverse"))
            text.update("No items where two reviewers' labels differ (and none adjudicated).")
            table_widget.update("")
            self.refresh_bindings()
            return
        title.update(
            Text(
                f" Adjudication {self.position + 1} of {len(self.items)}: "
                f"A = {self.first}, B = {self.second}, you = {self.session.reviewer} ",
                style="bold reverse",
            )
        )
        store, codebook = self.session.store, self.session.codebook
        response = store.response(item.entry.response_id)
        body = Text()
        body.append(f"{response.id} · {response.question or ''}\n", style="bold")
        body.append(codebook.question_text(response.question) + "\n\n", style="italic dim")
        body.append(response.text + "\n")
        text.update(body)
        model_labels = None
        if item.entry.proposal_id is not None:
            stored = store.proposal(item.entry.proposal_id)
            if stored.proposal is not None:
                model_labels = Labels.from_proposal(stored.proposal)
        first, second = item.labels.get(self.first), item.labels.get(self.second)
        themes_a = set(first.themes) if first else set()
        themes_b = set(second.themes) if second else set()
        table = Table(expand=True)
        table.add_column("m  model", style="magenta")
        table.add_column(f"1  A: {self.first}")
        table.add_column(f"2  B: {self.second}")
        table.add_row(
            _labels_cell(model_labels, codebook, themes_a & themes_b),
            _labels_cell(first, codebook, themes_b),
            _labels_cell(second, codebook, themes_a),
        )
        table_widget.update(table)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        item = self.current()
        if action in ("choose", "edit"):
            if item is None:
                return False
            if parameters and parameters[0] == "model":
                return item.entry.proposal_id is not None
            return True
        if action == "step":
            return 0 <= self.position + int(str(parameters[0])) < len(self.items)
        return True

    def action_choose(self, which: str) -> None:
        item = self.current()
        if item is None:
            return
        if which == "model":
            assert item.entry.proposal_id is not None
            stored = self.session.store.proposal(item.entry.proposal_id)
            assert stored.proposal is not None
            labels = Labels.from_proposal(stored.proposal)
        else:
            name = self.first if which == "a" else self.second
            labels = item.labels[name or ""]
        review.record_decision(
            self.session.store,
            self.session.index,
            response_id=item.entry.response_id,
            reviewer=self.session.reviewer,
            action="adjudicate",
            labels=labels,
            note=f"chose {which}",
        )
        self.session.session_decisions += 1
        self.session.recount()
        self.notify(f"Adjudicated {item.entry.response_id}: {which}.")
        self.items.pop(self.position)
        self.position = max(0, min(self.position, len(self.items) - 1))
        self.show()

    def action_edit(self) -> None:
        item = self.current()
        if item is not None:
            self.session.go_to(item.entry.response_id)
            self.dismiss()

    def action_step(self, delta: int) -> None:
        self.position += int(delta)
        self.show()

    def action_back(self) -> None:
        self.dismiss()
