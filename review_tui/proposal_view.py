"""The proposal pane: the model's labels (marked as the model's) and the reviewer's own."""

from __future__ import annotations

from rich.text import Text

from coder.review import ReviewItem
from review_tui.text_pane import TextPane
from schemas import Codebook, Labels

NUMBER_KEYS = "1234567890"
CHANGED = "bold yellow"


def _theme_label(codebook: Codebook, theme_id: str) -> str:
    try:
        return codebook.theme(theme_id).label
    except KeyError:
        return theme_id


def _question_label(codebook: Codebook, question_id: str | None) -> str:
    if not question_id:
        return "none"
    try:
        question = codebook.question(question_id)
    except KeyError:
        return question_id
    return f"{question.id} {question.short_name or ''}".strip()


def render_proposal(item: ReviewItem, codebook: Codebook, blind: bool) -> Text:
    """The model's proposal, clearly labelled with backend, model and versions."""
    out = Text()
    if blind:
        out.append("MODEL PROPOSAL hidden (blind review)\n", style="bold dim")
        return out
    stored = item.proposal
    if stored is None or stored.proposal is None:
        out.append("No model proposal for this response.\n", style="bold dim")
        return out
    proposal = stored.proposal
    out.append("MODEL PROPOSAL", style="bold reverse magenta")
    out.append(f"  conf {proposal.confidence:.2f}\n", style="bold magenta")
    provenance = f"{stored.backend} · {stored.model}"
    if stored.model_version:
        provenance += f" · {stored.model_version}"
    if stored.prompt_template_hash:
        provenance += f" · prompt {stored.prompt_template_hash[:8]}"
    if stored.codebook_version is not None:
        provenance += f" · codebook v{stored.codebook_version}"
    out.append(provenance + "\n", style="magenta")
    for flag in proposal.flags:
        out.append(f"⚠ {flag}\n", style="bold red")
    out.append("Hypothesis: ", style="bold")
    out.append(_question_label(codebook, proposal.question) + "\n")
    out.append("Stance: ", style="bold")
    if not codebook.has_stance(proposal.question) and not proposal.stance:
        out.append("not asked for this question", style="dim")
    else:
        out.append(str(proposal.stance or "—"))
    if proposal.stance_confidence is not None:
        out.append(f" ({proposal.stance_confidence:.2f})", style="dim")
    out.append("\nRelevant: ", style="bold")
    if proposal.relevant:
        out.append("yes")
    else:
        out.append("no", style="bold red")
        if proposal.relevance_reason:
            out.append(f" — {proposal.relevance_reason}")
    if proposal.relevance_confidence is not None:
        out.append(f" ({proposal.relevance_confidence:.2f})", style="dim")
    out.append("\nThemes:\n", style="bold")
    if not proposal.themes:
        out.append("  none\n", style="dim")
    for assignment in proposal.themes:
        out.append(f"  • {_theme_label(codebook, assignment.code)}")
        out.append(f" {assignment.confidence:.2f}\n", style="dim")
    if proposal.suggested_themes:
        out.append("Suggested new themes:\n", style="bold")
        for suggested in proposal.suggested_themes:
            out.append(f"  + {suggested.label}", style="green")
            if suggested.definition:
                out.append(f" — {suggested.definition}", style="dim")
            out.append("\n")
    if proposal.other_theme_needed:
        # The LLM saw a shortlist of themes and says one it was not shown is needed.
        out.append("Theme not in the shortlist: ", style="bold")
        out.append(proposal.other_theme_needed + "\n", style="green")
    if proposal.rationale:
        out.append("Rationale: ", style="bold")
        out.append(proposal.rationale + "\n", style="italic")
    return out


def render_labels(
    item: ReviewItem, draft: Labels, codebook: Codebook, reviewer: str, dirty: bool, blind: bool
) -> Text:
    """The reviewer's labels, with every applicable theme and its key."""
    proposal = item.proposed if not blind else None
    # One line per theme, cut to the pane's width rather than wrapped under the keys.
    out = Text(no_wrap=True, overflow="ellipsis")
    status = item.status + (" · edited" if dirty else "")
    out.append(f"YOUR LABELS ({reviewer})", style="bold reverse green")
    out.append(f"  {status}", style="bold green")
    if draft.quote:
        out.append("  ★ quote", style="bold yellow")
    out.append("\n")

    def value_style(changed: bool) -> str:
        return CHANGED if changed else ""

    out.append("Hypothesis: ", style="bold")
    out.append(
        _question_label(codebook, draft.question),
        style=value_style(proposal is not None and proposal.question != draft.question),
    )
    out.append("\nStance: ", style="bold")
    if not codebook.has_stance(draft.question) and not draft.stance:
        out.append("not asked for this question", style="dim")
    else:
        out.append(
            str(draft.stance or "—"),
            style=value_style(proposal is not None and proposal.stance != draft.stance),
        )
    out.append("\nRelevant: ", style="bold")
    relevant_changed = proposal is not None and proposal.relevant != draft.relevant
    if draft.relevant:
        out.append("yes", style=value_style(relevant_changed))
    else:
        out.append("no (excluded)", style="bold red")
        if draft.relevance_reason:
            out.append(f" — {draft.relevance_reason}")
    out.append("\n")
    proposed = set(proposal.theme_codes) if proposal else set()
    applied = set(draft.themes)
    themes = codebook.themes_for(draft.question)
    # The applied themes first, in one place, whatever their key.
    out.append("Themes: ", style="bold")
    if not draft.themes:
        out.append("none", style="dim")
    for number, code in enumerate(draft.themes):
        if number:
            out.append(", ")
        out.append(
            _theme_label(codebook, code),
            style=CHANGED if code not in proposed and proposal else "bold",
        )
    out.append("\n")
    for number, theme in enumerate(themes):
        if number == len(NUMBER_KEYS):
            out.append(" t  any theme by name (also those below):\n", style="dim")
        key = NUMBER_KEYS[number] if number < len(NUMBER_KEYS) else " "
        mark = "■" if theme.id in applied else "□"
        changed = proposal is not None and ((theme.id in applied) != (theme.id in proposed))
        style = CHANGED if changed else ("bold" if theme.id in applied else "dim")
        out.append(f" {key} ", style="bold cyan" if key != " " else "")
        out.append(f"{mark} {theme.label}", style=style)
        if theme.id in proposed and theme.id not in applied:
            out.append("  (model)", style="dim magenta")
        out.append("\n")
    for name, note in item.notes:
        out.append(f"Note ({name}): ", style="bold")
        out.append(note + "\n", style="italic")
    unknown = [code for code in draft.themes if code not in {t.id for t in themes}]
    for code in unknown:
        out.append(f"   ■ {code} (not for this question)\n", style="red")
    return out


class ProposalView(TextPane):
    """The model's proposal above the reviewer's labels."""

    more_hint = "] / ["

    def show(
        self,
        item: ReviewItem | None,
        draft: Labels,
        codebook: Codebook,
        reviewer: str,
        dirty: bool,
        blind: bool,
    ) -> None:
        if item is None:
            self.set_text(Text())
            return
        self.set_text(
            render_proposal(item, codebook, blind),
            render_labels(item, draft, codebook, reviewer, dirty, blind),
        )
