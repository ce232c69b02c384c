"""Why the reviewer changed the model's labels: one key per reason code, skippable."""

from __future__ import annotations

from coder.review import REASON_CODES
from review_tui.ask_bar import Choice

# One key per reason; the first letter of each, except 'q' (wrong question).
REASON_KEYS = {
    "w": "wrong_theme",
    "m": "missed_theme",
    "s": "wrong_stance",
    "r": "not_relevant",
    "q": "wrong_question",
    "o": "other",
}


def reason_choices() -> list[Choice]:
    """The reason codes as choices of the review screen's ask bar (Enter: the suggested)."""
    return [Choice(key, code, REASON_CODES[code]) for key, code in REASON_KEYS.items()]
