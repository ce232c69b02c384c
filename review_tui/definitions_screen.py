"""Theme definitions with include/exclude criteria and examples, one key away."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from schemas import Codebook, Theme

NUMBER_KEYS = "1234567890"


def render_definitions(codebook: Codebook, themes: list[Theme], applied: set[str]) -> Text:
    out = Text()
    for number, theme in enumerate(themes):
        key = NUMBER_KEYS[number] if number < len(NUMBER_KEYS) else "·"
        out.append(f"{key} ", style="bold cyan")
        out.append(theme.label, style="bold reverse" if theme.id in applied else "bold")
        out.append(f"  {theme.id}", style="dim")
        if theme.parent:
            out.append(f"  (under {theme.parent})", style="dim")
        out.append("\n")
        out.append(f"  {theme.definition}\n")
        for line in theme.include:
            out.append("  + include: ", style="green")
            out.append(line + "\n")
        for line in theme.exclude:
            out.append("  − exclude: ", style="red")
            out.append(line + "\n")
        for example in theme.examples[:3]:
            out.append(f"  “{example}”\n", style="italic dim")
        out.append("\n")
    if codebook.stance is not None:
        out.append("Stance\n", style="bold underline")
        for value in codebook.stance.values:
            out.append(f"  {value.label or value.id}", style="bold")
            out.append(f" — {value.description}\n")
        out.append("\n")
    if codebook.relevance is not None:
        out.append("Relevance\n", style="bold underline")
        out.append(f"  {codebook.relevance.description}\n")
    return out


class DefinitionsScreen(ModalScreen[None]):
    """The themes of the current question, as the codebook defines them."""

    BINDINGS = [Binding("escape,d,q", "close", "Close", id="definitions.close")]

    def __init__(self, codebook: Codebook, question: str | None, applied: set[str]) -> None:
        super().__init__()
        self.codebook = codebook
        self.question = question
        self.applied = applied

    def compose(self) -> ComposeResult:
        title = "Theme definitions"
        if self.question:
            title += f" for {self.question}: {self.codebook.question_text(self.question)}"
        themes = self.codebook.themes_for(self.question)
        with VerticalScroll(id="definitions-dialog", classes="dialog"):
            yield Static(title, classes="dialog-title")
            yield Static(render_definitions(self.codebook, themes, self.applied))

    def action_close(self) -> None:
        self.dismiss(None)
