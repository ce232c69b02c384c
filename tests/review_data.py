"""Build small (or very large) review projects for the review TUI tests and benchmark."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from coder.store import Store
from schemas import (
    Codebook,
    Proposal,
    Question,
    Response,
    SuggestedTheme,
    Theme,
    ThemeAssignment,
)

SENTENCES = [
    "Clinical leadership made the difference when we rolled out the pathway.",
    "We never had the uptake data to show the board it was working.",
    "The business case took eighteen months and the funding ended first.",
    "Informal networks of nurses spread the idea faster than any programme.",
    "It fitted our workflow badly, so people went back to paper.",
    "Adapting the model to our locality was essential, not a failure of fidelity.",
    "Evidence of return on investment is what commissioners ask for first.",
    "Short-term funding makes every change feel temporary.",
    "Patients and the community were not asked what they needed.",
    "Did not answer.",
]


def load_test_codebook() -> Codebook:
    """The built-in codebook (nine hypotheses and their themes)."""
    from coder.codebook import builtin_codebook_path, load_codebook

    return load_codebook(builtin_codebook_path())


def small_codebook() -> Codebook:
    """A tiny codebook for tests that need exact theme numbering."""
    return Codebook(
        name="tiny",
        questions=[
            Question(id="H1", short_name="Pathways", text="Pathway approaches speed adoption."),
            Question(id="H2", short_name="Leadership", text="Clinical leaders drive adoption."),
        ],
        themes=[
            Theme(
                id="leadership",
                label="Clinical leadership",
                definition="A named clinical leader drives the change.",
                include=["a clinician champions the work"],
                exclude=["managers only"],
                examples=["Our lead GP pushed it through."],
            ),
            Theme(id="data", label="Uptake data", definition="Data on uptake or outcomes."),
            Theme(id="funding", label="Funding", definition="Money, budgets, business cases."),
            Theme(
                id="pathway",
                label="Pathway approach",
                definition="Whole pathway redesign.",
                questions=["H1"],
            ),
        ],
    )


#: The terminal size the Pilot tests of the review app run at.
APP_SIZE = (120, 40)


def small_project(path: Path) -> Store:
    """A 12-answer project on the small codebook: enough for a screen of keys."""
    return build_project(path, 12, codebook=small_codebook())


def build_project(
    path: Path,
    n: int,
    *,
    codebook: Codebook | None = None,
    seed: int = 7,
    with_proposals: bool = True,
) -> Store:
    """A project file with ``n`` responses and a proposal for each (deterministic)."""
    rng = random.Random(seed)
    codebook = codebook or load_test_codebook()
    store = Store(path)
    version = store.save_codebook(codebook, source="test")
    questions = codebook.question_ids or [None]
    responses = []
    proposals = []
    for number in range(n):
        question = questions[number % len(questions)]
        text = " ".join(rng.sample(SENTENCES[:-1], k=rng.randint(1, 4)))
        if number % 17 == 5:
            text = SENTENCES[-1]
        tags = ["NHSSomerset"] if number % 5 == 0 else []
        response_id = f"r{number:06d}"
        responses.append(
            Response(
                id=response_id,
                text=text,
                question=question,
                respondent=f"p{number % 97}",
                attributes={"role": rng.choice(["GP", "Nurse", "Manager"]), "locality": "Somerset"},
                tags=tags,
            )
        )
        applicable = codebook.themes_for(question)
        chosen = rng.sample(applicable, k=min(len(applicable), rng.randint(1, 2)))
        relevant = text != SENTENCES[-1]
        first_sentence = text.split(".")[0]
        proposal = Proposal(
            response_id=response_id,
            question=question,
            stance=rng.choice(codebook.stance_ids) if codebook.stance_ids else None,
            relevant=relevant,
            relevance_reason=None if relevant else "did not answer",
            themes=[
                ThemeAssignment(
                    code=theme.id, evidence=first_sentence, confidence=round(rng.random(), 2)
                )
                for theme in chosen
            ]
            if relevant
            else [],
            suggested_themes=[SuggestedTheme(label="Digital maturity")] if number % 11 == 0 else [],
            rationale="The response names " + ", ".join(theme.label for theme in chosen) + ".",
            confidence=round(0.05 + 0.9 * ((number * 7919) % 1000) / 1000, 3),
        )
        proposals.append(
            {
                "response_id": response_id,
                "backend": "local",
                "model": "test",
                "model_version": "minilm-test-1",
                "codebook_version": version,
                "proposal": proposal,
            }
        )
    store.add_responses(responses)
    if with_proposals:
        store.add_proposals(proposals)
    return store


def review_app(store: Store, reviewer: str = "ann", **options: object):  # type: ignore[no-untyped-def]
    """A ReviewApp over ``store`` (imported here so the data module stays Textual-free)."""
    from review_tui.app import ReviewApp
    from review_tui.session import ReviewSession

    blind = bool(options.pop("blind", False))
    order = options.pop("order", None)
    session = ReviewSession(store, reviewer, blind=blind, order=order)  # type: ignore[arg-type]
    return ReviewApp(session, **options)  # type: ignore[arg-type]


def screen_text(app: Any) -> str:
    """What the terminal shows now, as plain text (every line of the current screen).

    Textual has no public way to read the composed screen as text (``export_screenshot``
    gives SVG, split into styled runs), so this one helper reads the screen's compositor,
    pinned with Textual itself (``textual==8.2.8``); every review test goes through it.
    """
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)
