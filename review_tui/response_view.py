"""The response pane: the text in full, its question, tags and respondent attributes."""

from __future__ import annotations

from rich.text import Text

from coder.cells import safe_for_terminal
from coder.review import ReviewItem
from review_tui.text_pane import TextPane
from schemas import Codebook

EVIDENCE_STYLE = "bold black on #e5c07b"


def evidence_spans(text: str, quotes: list[str]) -> list[tuple[int, int]]:
    """Where each evidence quote occurs in ``text`` (case-insensitive; every occurrence)."""
    lowered = text.lower()
    spans = []
    for quote in quotes:
        needle = quote.strip().lower()
        if not needle:
            continue
        start = lowered.find(needle)
        while start != -1:
            spans.append((start, start + len(needle)))
            start = lowered.find(needle, start + len(needle))
    return spans


def render_response(item: ReviewItem, codebook: Codebook, blind: bool) -> Text:
    """The response with its context; the proposal's evidence highlighted (not when blind)."""
    response = item.response
    out = Text()
    question_id = item.labels.question or response.question
    out.append(response.id, style="bold")
    out.append(f"  ·  {response.question or 'no question'}", style="bold cyan")
    if response.respondent:
        out.append(f"  ·  respondent {response.respondent}", style="dim")
    out.append("\n")
    if response.question:
        try:
            question = codebook.question(response.question)
            out.append((question.short_name or question.id) + ": ", style="bold cyan")
            out.append(question.text + "\n", style="italic")
        except KeyError:
            out.append(f"(question {response.question} is not in the codebook)\n", style="red")
    if question_id and question_id != response.question:
        out.append(f"Coded under {question_id}: ", style="bold yellow")
        out.append(codebook.question_text(question_id) + "\n", style="italic")
    if response.attributes:
        attributes = "  ".join(f"{key}: {value}" for key, value in response.attributes.items())
        out.append(attributes + "\n", style="dim")
    if response.tags:
        out.append(" ".join("#" + tag for tag in response.tags) + "\n", style="magenta")
    out.append("\n")
    # Control characters in an answer are shown as escapes, never sent to the terminal.
    shown = safe_for_terminal(response.text)
    body = Text(shown)
    proposal = item.proposed
    if proposal is not None and not blind:
        quotes = [t.evidence for t in proposal.themes if t.evidence]
        quotes += [s.evidence for s in proposal.suggested_themes if s.evidence]
        for start, end in evidence_spans(shown, [safe_for_terminal(q) for q in quotes]):
            body.stylize(EVIDENCE_STYLE, start, end)
    out.append_text(body)
    return out


class ResponseView(TextPane, can_focus=True):
    """The response pane (focused: arrow keys and PgUp/PgDn page long responses)."""

    def show(self, item: ReviewItem | None, codebook: Codebook, blind: bool) -> None:
        self.set_text(
            render_response(item, codebook, blind)
            if item is not None
            else Text("Nothing to review with this filter.", style="italic")
        )
