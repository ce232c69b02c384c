"""The reasons the offline model gives for "not relevant": written and read in one place.

A reason on a proposal quotes what it rests on: the answer ("non-answer ('n/a')", "refers to
another answer ('see above')") or the off-topic example it resembles ("off-topic, like 'Can
we have the slides?'"). Right on one proposal, noise in a published table: the report counts
them by :func:`reason_kind`. Reviewers' own reasons are free text and count as written.
"""

from __future__ import annotations

import re

NON_ANSWER = "non-answer"
CROSS_REFERENCE = "refers to another answer"
OFF_TOPIC = "off-topic"
#: Characters of the answer or example a reason quotes.
QUOTED = 40

_QUOTING = re.compile(
    rf"^({NON_ANSWER}|{CROSS_REFERENCE}) \((['\"]).*\2\)$|^({OFF_TOPIC}), like (['\"]).*\4$",
    re.DOTALL,
)


def quoting_answer(kind: str, text: str) -> str:
    """A reason of ``kind`` (:data:`NON_ANSWER`, :data:`CROSS_REFERENCE`) quoting the answer."""
    return f"{kind} ({text[:QUOTED]!r})"


def off_topic_like(example: str) -> str:
    """The reason for an answer closest to the off-topic ``example``."""
    return f"{OFF_TOPIC}, like {example[:QUOTED]!r}"


def reason_kind(reason: str | None) -> str:
    """The row an exclusion reason counts in: the kind of a reason that quotes an answer or
    example, else the reason itself ("no reason given" when there is none)."""
    if not reason:
        return "no reason given"
    match = _QUOTING.match(reason)
    if match is None:
        return reason
    return match.group(1) or match.group(3)
