"""The cascade's calibration: which rule and cut let the embedded model settle an answer.

The cut (:func:`calibrate`) is chosen on the project's reviewed answers
(their labels in force): the embedded model's *held-out* proposals for them (zero-shot
ones as they are, since zero-shot never saw the labels; for a trained model, out-of-fold
proposals of the same training on ``folds`` splits of the reviewed answers) are sorted by
confidence, and the cut is the lowest confidence at which the answers at or above it still
agree with the reviewers at the *target* level on every field: themes micro-F1 (codes that
apply to the question, parents added by the codebook's rule), stance accuracy and
relevance accuracy. The target is ``--cascade-precision`` when given; else the LLM's own
measured agreement with the same reviewers, per field, when reviewers judged at least
``MIN_REVIEWED`` LLM proposals (the embedded model then only settles what it codes as well
as the LLM does); else ``DEFAULT_TARGET``.

Two rules compete on the same held-out answers and the one that settles more of them at
the targets decides: one cut on the overall confidence or one cut per field
(``coder/cascade_cuts.py``). A third, a cut on a logistic "whole proposal right" score over
the field confidences, answer length and code count, is measured by
benchmarks/study_cascade_rules.py but not offered: on NHS it settled 29.7% of held-out
halves against 30.1% / 30.8% with 1,000 reviewed, 46.9% against 38.8% / 44.2% with 2,000.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coder.cascade_cuts import (
    FIELDS,
    MIN_SETTLED,
    answer_levels,
    choose_cut,
    choose_field_cuts,
    field_confidences,
    item_agreement,
)
from coder.errors import BackendError
from coder.precode import prior_input
from coder.store import Store
from schemas import Codebook, Labels, Proposal, Response

#: Reviewed answers needed before a confidence cut is trusted (and LLM-judged ones before
#: the LLM's measured level replaces the default target).
MIN_REVIEWED = 50
#: Agreement with reviewers the settled answers must reach when nothing else says.
DEFAULT_TARGET = 0.9
#: Out-of-fold splits of the reviewed answers when the embedded model is trained.
FOLDS = 4


@dataclass
class Calibration:
    """Where the cut came from and what it promises on the reviewed answers."""

    cut: float | None
    targets: dict[str, float]
    target_source: str
    n_reviewed: int
    held_out: str
    #: on the held-out reviewed answers at or above the cut: share and per-field agreement
    expected: dict[str, Any] = field(default_factory=dict)
    fallback: str | None = None
    #: per-field cuts (coder/cascade_cuts.py); when set they decide, not ``cut``
    field_cuts: dict[str, float] | None = None
    #: what the single overall cut would have settled on the same held-out answers
    single_cut: dict[str, Any] = field(default_factory=dict)
    #: the share of held-out answers each rule would settle at the targets
    rules: dict[str, float] = field(default_factory=dict)
    #: the held-out arrays the cuts were chosen on (not stored with proposals: for study)
    held_out_data: dict[str, Any] | None = field(default=None, repr=False)

    def describe(self) -> str:
        """One paragraph for the run's output."""
        targets = ", ".join(f"{name} {value:.3f}" for name, value in self.targets.items())
        if self.fallback:
            return (
                f"cascade fallback: {self.fallback}; only answers plain rules rule out "
                "(blank, 'did not answer', punctuation) are settled without the LLM"
            )
        if self.cut is None and self.field_cuts is None:
            return (
                f"cascade: no confidence cut reaches the target ({targets}; {self.target_source}) "
                f"on {self.n_reviewed} reviewed answers ({self.held_out}); only answers plain "
                "rules rule out are settled without the LLM"
            )
        shown = ", ".join(
            f"{name} {value:.3f}"
            for name, value in self.expected.items()
            if name != "share" and value is not None
        )
        if self.field_cuts is not None:
            cuts = ", ".join(f"{name} {value:.3f}" for name, value in self.field_cuts.items())
            how = f"embedded confidence cuts per field ({cuts})"
        else:
            how = f"embedded confidence cut {self.cut:.4f}"
        rules = ", ".join(f"{name} {share:.1%}" for name, share in self.rules.items())
        return (
            f"cascade: {how}, calibrated on {self.n_reviewed} "
            f"reviewed answers ({self.held_out}); target {targets} ({self.target_source}); "
            f"held out, the answers above the cut were {self.expected.get('share', 0):.1%} of "
            f"them and agreed with reviewers at {shown}"
            + (f" (share each rule settles: {rules})" if rules else "")
        )

    def as_dict(self) -> dict[str, Any]:
        """The calibration as JSON-ready data (without the held-out arrays)."""
        return {name: value for name, value in self.__dict__.items() if name != "held_out_data"}


def reviewed(store: Store) -> list[tuple[Response, Labels]]:
    """The project's reviewed answers with their labels in force."""
    decisions = store.final_labels()
    ids = sorted(decisions)
    responses = {response.id: response for response in store.responses(ids=ids)} if ids else {}
    return [
        (responses[i], decisions[i].labels)  # type: ignore[misc]
        for i in ids
        if i in responses and decisions[i].labels is not None
    ]


def llm_levels(store: Store, codebook: Codebook) -> tuple[dict[str, float], int]:
    """The LLM's agreement with reviewers on the answers where they judged an LLM proposal."""
    stats = np.zeros(6)
    count = 0
    for decision in store.final_labels().values():
        if decision.proposal_id is None or decision.labels is None:
            continue
        try:
            judged = store.proposal(decision.proposal_id)
        except KeyError:
            continue
        if judged.backend == "local" or judged.proposal is None:
            continue
        question = decision.labels.question or judged.proposal.question
        stats += item_agreement(judged.proposal, decision.labels, question, codebook)
        count += 1
    levels = answer_levels(stats, count)
    return {name: value for name, value in levels.items() if value is not None}, count


def held_out_proposals(
    store: Store,
    local: Any,
    pairs: Sequence[tuple[Response, Labels]],
    codebook: Codebook,
    folds: int = FOLDS,
) -> tuple[list[Proposal | None], np.ndarray, str]:
    """The embedded model's proposals for reviewed answers it did not learn them from, and
    their per-field confidences (:func:`coder.cascade_cuts.field_confidences`) from the
    same model."""
    responses = [response for response, _ in pairs]
    if getattr(local, "state", None) is None:
        found = [r.proposal for r in local.propose(responses, codebook)]
        confidences = field_confidences(local, responses, found, codebook)
        return found, confidences, "zero-shot proposals (never saw the labels)"
    from coder.embedded.classifier import LocalClassifier
    from coder.embedded.training import LabelledExample

    examples = [
        LabelledExample(
            id=response.id,
            text=response.text,
            question=labels.question or response.question,
            themes=list(labels.themes) if labels.relevant else [],
            stance=labels.stance,
            relevant=labels.relevant,
        )
        for response, labels in pairs
    ]
    k = max(2, min(folds, len(pairs) // 10))
    order = np.random.default_rng(0).permutation(len(pairs))
    proposals: list[Proposal | None] = [None] * len(pairs)
    confidences = np.zeros((len(pairs), 3))
    prior = prior_input(store)
    for fold in range(k):
        test = order[fold::k]
        train = [examples[i] for i in order if i not in set(test.tolist())]
        sibling = LocalClassifier(encoder=local.encoder, use_stored_model=False)
        sibling.prepare(prior, codebook)
        sibling.fit(train, codebook)
        held = [responses[i] for i in test]
        found = [result.proposal for result in sibling.propose(held, codebook)]
        confidences[test] = field_confidences(sibling, held, found, codebook)
        for index, proposal in zip(test, found, strict=True):
            proposals[index] = proposal
    return proposals, confidences, f"{k}-fold out-of-fold proposals of the same training"


def _targets(
    store: Store, codebook: Codebook, precision: float | None, min_reviewed: int
) -> tuple[dict[str, float], str]:
    """The agreement the settled answers must reach per field, and where it comes from."""
    if precision is not None:
        if not 0 < precision <= 1:
            raise BackendError(f"--cascade-precision must be in (0, 1], got {precision}")
        return dict.fromkeys(FIELDS, precision), "--cascade-precision"
    measured, judged = llm_levels(store, codebook)
    if judged >= min_reviewed:
        targets = {name: measured.get(name, DEFAULT_TARGET) for name in FIELDS}
        return targets, f"the LLM's agreement with reviewers on {judged} answers they judged"
    return dict.fromkeys(FIELDS, DEFAULT_TARGET), (
        f"default {DEFAULT_TARGET} (reviewers judged {judged} LLM proposals; "
        f"{min_reviewed} measure the LLM's level)"
    )


def calibrate(
    store: Store,
    local: Any,
    codebook: Codebook,
    *,
    precision: float | None = None,
    min_reviewed: int = MIN_REVIEWED,
    folds: int = FOLDS,
    per_field: bool = True,
) -> Calibration:
    """Choose the embedded confidence cut on the project's reviewed answers (module
    docstring). The rule that settles more held-out answers at the targets decides: one
    overall cut or, with ``per_field``, one cut per field."""
    targets, source = _targets(store, codebook, precision, min_reviewed)
    pairs = reviewed(store)
    if len(pairs) < min_reviewed:
        return Calibration(
            cut=None,
            targets=targets,
            target_source=source,
            n_reviewed=len(pairs),
            held_out="none",
            fallback=f"{len(pairs)} reviewed answers, fewer than the {min_reviewed} a "
            "confidence cut needs (review more, then run again)",
        )
    proposals, by_field, how = held_out_proposals(store, local, pairs, codebook, folds)
    confidences = [p.confidence if p is not None else 0.0 for p in proposals]
    stats = np.vstack(
        [
            item_agreement(p, labels, labels.question or response.question, codebook)
            if p is not None
            else np.zeros(6)
            for p, (response, labels) in zip(proposals, pairs, strict=True)
        ]
    )
    cut, expected = choose_cut(confidences, stats, targets)
    calibration = Calibration(
        cut=cut,
        targets=targets,
        target_source=source,
        n_reviewed=len(pairs),
        held_out=how,
        expected=expected,
        held_out_data={
            "response_id": [response.id for response, _ in pairs],
            "words": [len(response.text.split()) for response, _ in pairs],
            "question": [labels.question or response.question or "" for response, labels in pairs],
            "n_codes": [len(p.themes) if p is not None else 0 for p in proposals],
            "relevant": [bool(p is not None and p.relevant) for p in proposals],
            "confidence": confidences,
            "field_confidence": by_field,
            "agreement": stats,
        },
    )
    calibration.rules = {"single": expected.get("share", 0.0)}
    if per_field:
        cuts, by_field_expected = choose_field_cuts(by_field, stats, targets, MIN_SETTLED)
        calibration.rules["per_field"] = by_field_expected.get("share", 0.0)
        # The grid of per-field cuts is coarser than the single cut's sweep: use it only
        # where it settles more of the held-out answers.
        if cuts is not None and by_field_expected["share"] > expected.get("share", 0.0):
            calibration.single_cut = {"cut": cut, "expected": expected}
            calibration.field_cuts, calibration.expected = cuts, by_field_expected
    return calibration
