"""Several samples of one answer's coding, combined by majority (``coder precode --samples N``).

An LLM's labels move from run to run. Asking N times and keeping the majority steadies
them, and how far the N samples agree is a confidence that means something (unlike a
model's self-reported one). Per field:

- relevance: the majority of the N samples (a tie counts as relevant: a reviewer sees it);
- stance: the most frequent value among the samples that call the answer relevant (ties go
  to the value seen first, i.e. the lowest seed);
- themes: each code the *majority* of all N samples applied (more than N/2), its
  confidence the share of samples that applied it, its evidence the first sample's quote.

The proposal's ``confidence`` is the share of samples whose whole coding (relevance,
stance, theme set) equals the majority's; ``stance_confidence`` and
``relevance_confidence`` are the shares agreeing on that field. The samples themselves are
summarised in the proposal row's ``params["samples"]`` and their calls are in ``llm_calls``
(each with its seed), so nothing the majority dropped is lost.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

from schemas import Proposal, SuggestedTheme, ThemeAssignment


def coding(proposal: Proposal) -> tuple[bool, str | None, tuple[str, ...]]:
    """A proposal's labels in comparable form: (relevant, stance, sorted theme codes)."""
    if not proposal.relevant:
        return (False, None, ())
    return (True, proposal.stance, tuple(sorted({t.code for t in proposal.themes})))


def majority(samples: Sequence[Proposal]) -> Proposal:
    """The majority proposal of ``samples`` (all for one response); see the module docstring."""
    if not samples:
        raise ValueError("no samples to combine")
    n = len(samples)
    first = samples[0]
    relevant_votes = sum(1 for sample in samples if sample.relevant)
    relevant = relevant_votes * 2 >= n
    relevant_share = (relevant_votes if relevant else n - relevant_votes) / n

    stance: str | None = None
    stance_share: float | None = None
    themes: list[ThemeAssignment] = []
    if relevant:
        voters = [sample for sample in samples if sample.relevant]
        stances = Counter(sample.stance for sample in voters)
        if stances:
            top = max(stances.values())
            stance = next(s.stance for s in voters if stances[s.stance] == top)
            stance_share = sum(1 for s in samples if s.relevant and s.stance == stance) / n
        counts: Counter[str] = Counter()
        evidence: dict[str, str | None] = {}
        order: list[str] = []
        for sample in voters:
            here: set[str] = set()
            for theme in sample.themes:
                if theme.code in here:  # a code a sample applied twice is one vote
                    continue
                here.add(theme.code)
                counts[theme.code] += 1
                if theme.code not in evidence:
                    evidence[theme.code] = theme.evidence
                    order.append(theme.code)
        themes = [
            ThemeAssignment(code=code, evidence=evidence[code], confidence=counts[code] / n)
            for code in order
            if counts[code] * 2 > n
        ]
    combined = Proposal(
        response_id=first.response_id,
        question=first.question,
        stance=stance,
        stance_confidence=stance_share if stance is not None else None,
        relevant=relevant,
        relevance_reason=None
        if relevant
        else _first(s.relevance_reason for s in samples if not s.relevant),
        relevance_confidence=relevant_share,
        themes=themes,
        suggested_themes=_suggested(samples),
        rationale=f"Majority of {n} samples. " + (first.rationale or ""),
        confidence=0.0,
        flags=sorted({flag for sample in samples for flag in sample.flags}),
    )
    agreed = coding(combined)
    combined.confidence = sum(1 for sample in samples if coding(sample) == agreed) / n
    return combined


def _first(values: Any) -> Any:
    return next(iter(values), None)


def _suggested(samples: Sequence[Proposal]) -> list[SuggestedTheme]:
    # A new theme suggested by any sample is kept (once per label): suggestions are for the
    # analyst to look at, not labels, so a minority's idea is worth showing.
    seen: dict[str, SuggestedTheme] = {}
    for sample in samples:
        for theme in sample.suggested_themes:
            seen.setdefault(theme.label.casefold(), theme)
    return list(seen.values())


def sample_summary(
    samples: Sequence[Proposal], seeds: Sequence[int | None]
) -> list[dict[str, Any]]:
    """What each sample said, compactly, for the combined proposal's provenance."""
    return [
        {
            "seed": seed,
            "relevant": sample.relevant,
            "stance": sample.stance,
            "themes": sorted({t.code for t in sample.themes}),
        }
        for sample, seed in zip(samples, seeds, strict=True)
    ]


def samples_input_hash(sample_hashes: Sequence[str | None], seeds: Sequence[int | None]) -> str:
    """A cache key for a majority of samples: the samples' own keys, their seeds and N."""
    text = "|".join(f"{h}:{s}" for h, s in zip(sample_hashes, seeds, strict=True))
    return hashlib.sha256(f"samples={len(seeds)}|{text}".encode()).hexdigest()
