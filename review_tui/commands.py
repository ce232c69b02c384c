"""The command palette provider: jump, filter, reorder, switch reviewer, export."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from coder import review
from coder.review import FilterError, parse_filter

if TYPE_CHECKING:
    from review_tui.app import ReviewApp

FILTERS = [
    ("Filter: unreviewed", "status:unreviewed"),
    ("Filter: skipped", "status:skipped"),
    ("Filter: flagged quotes", "status:flagged"),
    ("Filter: corrected", "status:corrected"),
    ("Filter: accepted", "status:accepted"),
    ("Filter: reviewers disagree", "disagree"),
    ("Filter: low confidence (< 0.5)", "conf<0.5"),
    ("Filter: clear", ""),
]


def around(text: str, query: str, width: int = 70) -> str:
    """The part of ``text`` around the first match of ``query`` (one line)."""
    text = " ".join(text.split())
    start = max(0, text.lower().find(query.lower()) - width // 3)
    snippet = text[start : start + width]
    return ("…" if start else "") + snippet + ("…" if start + width < len(text) else "")


class ReviewCommands(Provider):
    """Commands that know the project: its responses, questions, themes and reviewers."""

    @property
    def review_app(self) -> ReviewApp:
        return self.app  # type: ignore[return-value]

    def _commands(self) -> list[tuple[str, object, str]]:
        app = self.review_app
        session = app.session
        commands: list[tuple[str, object, str]] = []
        for title, text in FILTERS:
            commands.append((title, partial(app.apply_filter, text), f"filter '{text}'"))
        for question in session.codebook.questions:
            text = f"question:{question.id}"
            commands.append(
                (
                    f"Filter: question {question.id} {question.short_name or ''}".strip(),
                    partial(app.apply_filter, text),
                    question.text[:80],
                )
            )
        for theme in session.codebook.themes:
            text = f"theme:{theme.id}"
            commands.append(
                (f"Filter: theme {theme.label}", partial(app.apply_filter, text), theme.id)
            )
        for name in [] if session.blind else session.index.reviewers():
            if name != session.reviewer:
                commands.append(
                    (
                        f"Switch reviewer: {name}",
                        partial(app.switch_reviewer, name),
                        "decisions from now on are recorded as this reviewer",
                    )
                )
        commands += [
            ("Order: least confident first", partial(app.set_order, "confidence"), ""),
            ("Order: import order", partial(app.set_order, "import"), ""),
            ("Export labels (JSONL)", app.export_labels, "the labels in force, beside the db"),
            ("Queue", app.open_queue, "list, filter, bulk accept"),
            ("Help: keys", app.open_help, ""),
        ]
        if not session.blind:
            commands.append(("Adjudicate", app.open_adjudication, "where two reviewers differ"))
        return commands

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        app = self.review_app
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(title),
                    callback,  # type: ignore[arg-type]
                    help=help_text,
                )
        stripped = query.strip()
        if not stripped:
            return
        if stripped.startswith("reviewer ") and len(stripped) > 9:
            name = stripped[9:].strip()
            yield Hit(1.0, f"Switch reviewer to {name!r}", partial(app.switch_reviewer, name))
        if ":" in stripped or stripped.startswith("conf") or stripped == "disagree":
            try:
                described = parse_filter(stripped).describe()
            except FilterError as error:
                yield Hit(0.9, f"Filter error: {error}", partial(app.notify, str(error)))
            else:
                yield Hit(0.9, f"Apply filter: {described}", partial(app.apply_filter, stripped))
        # Jump to a response by id or by words in its text (a bounded LIKE query).
        session = app.session
        if stripped in session.index.by_id:
            yield Hit(1.0, f"Go to {stripped}", partial(app.go_to, stripped))
        if len(stripped) >= 3:
            for response_id in sorted(review.text_matches(session.store, stripped, limit=20)):
                snippet = around(session.store.response(response_id).text, stripped)
                yield Hit(
                    0.5,
                    f"Go to {response_id}: {snippet}",
                    partial(app.go_to, response_id),
                )
