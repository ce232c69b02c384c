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

Three rules compete on the same held-out answers and the one that settles most of them at
the targets decides: one cut on the overall confidence, one cut per field
(``coder/cascade_cuts.py``), or one cut on a logistic "whole proposal right" score over
the field confidences, answer length and code count (``coder/cascade_joint.py``, its cut
chosen on cross-fitted scores). benchmarks/study_cascade_rules.py measures them on held-out
halves: on NHS with 1,000 reviewed they settle 30.1% / 30.8% / 29.7%, with 2,000 38.8% /
44.2% / 46.9%.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coder.cascade_cuts import (
    FIELDS,
    FORCED,
    MIN_SETTLED,
    answer_levels,
    choose_cut,
    choose_field_cuts,
    field_confidences,
    item_agreement,
)
from coder.cascade_joint import JointScore, choose_joint_cut, joint_features
from coder.errors import BackendError
from coder.precode import prior_input
from coder.store import Store
from coder.twins import TwinCheck, TwinIndex, judge
from schemas import Codebook, Labels, Proposal, Response

#: Reviewed answers needed before a confidence cut is trusted (and LLM-judged ones before
#: the LLM's measured level replaces the default target).
MIN_REVIEWED = 50
#: Agreement with reviewers the settled answers must reach when nothing else says.
DEFAULT_TARGET = 0.9
#: Out-of-fold splits of the reviewed answers when the embedded model is trained.
FOLDS = 4
#: The rules that compete (module docstring), simplest first.
RULES = ("single", "per_field", "joint")


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
    #: the joint score and its cut (coder/cascade_joint.py); when set they decide alone
    joint_score: JointScore | None = None
    joint_cut: float | None = None
    #: the single overall cut and what it settles on the same held-out answers (recorded
    #: whichever rule decides)
    single_cut: dict[str, Any] = field(default_factory=dict)
    #: the share of held-out answers each rule would settle at the targets
    rules: dict[str, float] = field(default_factory=dict)
    #: the held-out arrays the cuts were chosen on (not stored with proposals: for study)
    held_out_data: dict[str, Any] | None = field(default=None, repr=False)
    #: the reviewed answers by wording, and the twin rule's leave-one-out check
    #: (coder/twins.py): when trusted, twins settle first and count in every cut's levels
    twins: TwinIndex | None = field(default=None, repr=False)
    twin_check: TwinCheck | None = None

    def describe(self) -> str:
        """One paragraph for the run's output."""
        return self._describe_cut() + self._describe_twins()

    def _describe_twins(self) -> str:
        check = self.twin_check
        if check is None or not check.trusted:
            return ""
        levels = ", ".join(
            f"{name} {value:.3f}" for name, value in check.levels.items() if value is not None
        )
        return (
            f"; answers worded as reviewed answers that reviewers coded alike are settled "
            f"with their labels first (checked leave-one-out on {check.checked} reviewed "
            f"answers: {levels})"
        )

    def _describe_cut(self) -> str:
        targets = ", ".join(f"{name} {value:.3f}" for name, value in self.targets.items())
        if self.fallback:
            return (
                f"cascade fallback: {self.fallback}; only answers plain rules rule out "
                "(blank, 'did not answer', punctuation) are settled without the LLM"
            )
        if self.cut is None and self.field_cuts is None and self.joint_cut is None:
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
        if self.joint_cut is not None:
            how = f"cut {self.joint_cut:.4f} on the joint 'whole proposal right' score"
        elif self.field_cuts is not None:
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
        skip = ("held_out_data", "twins")
        data = {name: value for name, value in self.__dict__.items() if name not in skip}
        data["joint_score"] = self.joint_score.as_dict() if self.joint_score else None
        data["twin_check"] = self.twin_check.as_dict() if self.twin_check else None
        return data

    @property
    def rule(self) -> str:
        """The rule that decides: joint, per_field, single or none (plain rules only)."""
        if self.joint_cut is not None:
            return "joint"
        if self.field_cuts is not None:
            return "per_field"
        return "single" if self.cut is not None else "none"


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
    rules: Sequence[str] = RULES,
) -> Calibration:
    """Choose the embedded confidence cut on the project's reviewed answers (module
    docstring). Of ``rules`` (some of :data:`RULES`), the one that settles most held-out
    answers at the targets decides; on a tie the earlier, simpler one."""
    unknown = sorted(set(rules) - set(RULES))
    if unknown or not rules:
        raise BackendError(f"cascade rules must be some of {', '.join(RULES)}, got {unknown}")
    targets, source = _targets(store, codebook, precision, min_reviewed)
    pairs = reviewed(store)
    twins = TwinIndex.from_reviewed(pairs)
    forced, twin_stats = twins.held_out(pairs, codebook)
    twin_check = judge(forced, twin_stats, targets)
    if len(pairs) < min_reviewed:
        return Calibration(
            twins=twins,
            twin_check=twin_check,
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
    # Answers the twin rule settles count with the twins' labels in every cut's levels.
    if not twin_check.trusted:
        forced[:] = False
    stats[forced] = twin_stats[forced]
    calibration = Calibration(
        cut=None,
        targets=targets,
        target_source=source,
        n_reviewed=len(pairs),
        held_out=how,
        twins=twins,
        twin_check=twin_check,
        held_out_data={
            "forced": forced,
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
    _choose_rule(calibration, rules)
    return calibration


def _choose_rule(calibration: Calibration, allowed: Sequence[str]) -> None:
    """Measure each allowed rule on the held-out arrays and let the one settling the most
    decide (only its cuts are set). The single and per-field shares are measured on the
    answers that chose their cuts, the joint score's on cross-fitted scores, so the
    comparison leans, if anything, against the joint score."""
    data = calibration.held_out_data
    assert data is not None
    stats, targets, forced = data["agreement"], calibration.targets, data["forced"]
    found: dict[str, tuple[Any, dict[str, Any]]] = {}
    confidence = np.where(forced, FORCED, np.asarray(data["confidence"], dtype=float))
    cut, expected = choose_cut(confidence.tolist(), stats, targets)
    if cut is not None and cut >= FORCED:  # only the twins meet the targets
        cut, expected = None, {}
    # The single cut is always measured: the run's output compares the others with it.
    calibration.single_cut = {"cut": cut, "expected": expected}
    if "single" in allowed:
        found["single"] = (cut, expected)
    if "per_field" in allowed:
        by_field = np.where(forced[:, None], FORCED, data["field_confidence"])
        cuts, field_expected = choose_field_cuts(by_field, stats, targets, MIN_SETTLED)
        if cuts is not None and max(cuts.values()) >= FORCED:
            cuts, field_expected = None, {}
        found["per_field"] = (cuts, field_expected)
    if "joint" in allowed:
        features = joint_features(
            data["field_confidence"], np.asarray(data["confidence"]), np.asarray(data["words"]),
            np.asarray(data["n_codes"]), np.asarray(data["relevant"]),
        )  # fmt: skip
        score, joint_cut, joint_expected = choose_joint_cut(features, stats, targets, forced=forced)
        found["joint"] = ((score, joint_cut) if score is not None else None, joint_expected)
    calibration.rules = {name: found[name][1].get("share", 0.0) for name in found}
    best: str | None = None
    for name in RULES:  # the simpler rule first: a tie keeps it
        if name in found and found[name][0] is not None:
            if best is None or calibration.rules[name] > calibration.rules[best]:
                best = name
    if best is None:
        return
    chosen, calibration.expected = found[best]
    if best == "single":
        calibration.cut = chosen
    elif best == "per_field":
        calibration.field_cuts = chosen
    else:
        calibration.joint_score, calibration.joint_cut = chosen
