"""The cascade: the embedded model settles what it is sure of, the LLM codes the rest.

``coder precode --backend openai --cascade`` first runs the embedded classifier (backend
``local``: the project's latest trained model, else zero-shot) over the responses to do.
A response whose embedded proposal is at least as confident as a *cut* keeps that
proposal (stored with backend ``local``, ``params.route = "cascade:embedded"``); the
others go to the LLM through the ordinary precode path (``params.route =
"cascade:llm"``). Both rows carry the cut, the item's embedded confidence and the basis of
the cut in ``params.cascade``, so every label says which path made it and why.

**Calibration** (:func:`calibrate`). The cut is chosen on the project's reviewed answers
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

**Fallback.** With fewer than ``MIN_REVIEWED`` reviewed answers no cut is trusted: the
cascade settles only the answers that plain rules rule out (blank, "did not answer",
punctuation only: never a fitted guess) and sends everything else to the LLM. The run says
so. Resuming works as precode does: settled answers are stored at once, and the next run
recomputes the same cut over what is left.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coder.backends.base import Classifier, ProposalResult, get_classifier
from coder.cascade_cuts import (
    FIELDS,
    MIN_SETTLED,
    _levels,
    choose_cut,
    choose_field_cuts,
    clears,
    field_confidences,
    item_agreement,
)
from coder.errors import BackendError
from coder.precode import (
    PrecodeProgress,
    PrecodeSummary,
    _prepare_input,
    _record,
    _row,
    precode,
    responses_to_precode,
)
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
        return (
            f"cascade: {how}, calibrated on {self.n_reviewed} "
            f"reviewed answers ({self.held_out}); target {targets} ({self.target_source}); "
            f"held out, the answers above the cut were {self.expected.get('share', 0):.1%} of "
            f"them and agreed with reviewers at {shown}"
        )

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class CascadeSummary:
    """What a cascade run did and saved."""

    todo: int = 0
    settled: int = 0
    sent: int = 0
    calibration: Calibration | None = None
    llm: PrecodeSummary = field(default_factory=PrecodeSummary)
    #: the pre-flight estimate (chars/4) of what the settled answers would have cost
    saved_calls: int = 0
    saved_prompt_tokens: int = 0
    saved_completion_tokens: int = 0
    saved_cost_usd: float | None = 0.0
    embedded_seconds: float = 0.0

    @property
    def llm_share(self) -> float:
        return self.sent / self.todo if self.todo else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("llm", "calibration")}
        data["llm_share"] = self.llm_share
        data["llm"] = self.llm.as_dict()
        data["calibration"] = self.calibration.as_dict() if self.calibration else None
        return data


# --- calibration --------------------------------------------------------------------------
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
    levels = _levels(stats, count)
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
    prior = _prepare_input(store)
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
    docstring); ``per_field`` chooses one cut per field instead of one overall cut."""
    if precision is not None:
        if not 0 < precision <= 1:
            raise BackendError(f"--cascade-precision must be in (0, 1], got {precision}")
        targets = dict.fromkeys(FIELDS, precision)
        source = "--cascade-precision"
    else:
        measured, judged = llm_levels(store, codebook)
        if judged >= min_reviewed:
            targets = {name: measured.get(name, DEFAULT_TARGET) for name in FIELDS}
            source = f"the LLM's agreement with reviewers on {judged} answers they judged"
        else:
            targets = dict.fromkeys(FIELDS, DEFAULT_TARGET)
            source = (
                f"default {DEFAULT_TARGET} (reviewers judged {judged} LLM proposals; "
                f"{min_reviewed} measure the LLM's level)"
            )
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
    )
    if per_field:
        cuts, by_field_expected = choose_field_cuts(by_field, stats, targets, MIN_SETTLED)
        # The grid of per-field cuts is coarser than the single cut's sweep: use it only
        # where it settles more of the held-out answers.
        if cuts is not None and by_field_expected["share"] > expected.get("share", 0.0):
            calibration.single_cut = {"cut": cut, "expected": expected}
            calibration.field_cuts, calibration.expected = cuts, by_field_expected
    return calibration


# --- the run -------------------------------------------------------------------------------
def _rule_out(text: str) -> bool:
    from coder.embedded.features import non_answer_reason

    return non_answer_reason(text, soft=False) is not None


def settles(
    result: ProposalResult,
    response: Response,
    calibration: Calibration,
    confidences: np.ndarray | None = None,
) -> bool:
    """True when the embedded proposal stands without the LLM (``confidences``: its
    per-field row, needed when the calibration has per-field cuts)."""
    proposal = result.proposal
    if not result.ok or proposal is None:
        return False
    if calibration.field_cuts is not None:
        if confidences is not None and clears(confidences, calibration.field_cuts):
            return True
    elif calibration.cut is not None and proposal.confidence >= calibration.cut:
        return True
    # Plain rules (blank, "did not answer") are not a fitted guess: trusted in any case.
    return not proposal.relevant and _rule_out(response.text)


def _local_classifier(store: Store) -> Any:
    # The project's latest trained model, else zero-shot (as 'coder precode' builds it).
    return get_classifier("local", model_store=store)


def _route_entry(
    result: ProposalResult, marker: dict[str, Any], by_field: np.ndarray | None
) -> dict[str, Any]:
    """The ``params`` a cascade proposal records: its path, the cuts and its confidences."""
    confidence = result.proposal.confidence if result.proposal is not None else None
    entry: dict[str, Any] = {"route": "cascade:embedded", "cascade": {**marker}}
    entry["cascade"]["confidence"] = confidence
    if by_field is not None:
        entry["cascade"]["field_confidence"] = {
            name: float(value)  # not rounded: the cut compares these exact values
            for name, value in zip(("themes", "stance", "relevance"), by_field, strict=True)
        }
    return entry


def _settle(
    store: Store,
    local: Any,
    todo: Sequence[Response],
    calibration: Calibration,
    marker: dict[str, Any],
) -> tuple[list[Response], list[Response], dict[str, dict[str, Any]]]:
    """Store the embedded proposals that settle; return (settled, to send, their routes)."""
    codebook_version, codebook = store.codebook()
    send: list[Response] = []
    route: dict[str, dict[str, Any]] = {}
    settled: list[Response] = []
    local_summary = PrecodeSummary()
    for start in range(0, len(todo), 256):
        chunk = todo[start : start + 256]
        results = local.propose(chunk, codebook)
        by_field = (
            field_confidences(local, chunk, [r.proposal for r in results], codebook)
            if calibration.field_cuts is not None
            else None
        )
        rows = []
        for index, (result, response) in enumerate(zip(results, chunk, strict=True)):
            row = by_field[index] if by_field is not None else None
            entry = _route_entry(result, marker, row)
            if settles(result, response, calibration, row):
                _record(local_summary, result, response)
                rows.append(_row(result, local, codebook_version, None, {response.id: entry}))
                settled.append(response)
            else:
                send.append(response)
                route[response.id] = {**entry, "route": "cascade:llm"}
        store.add_proposals(rows)
    return settled, send, route


def cascade(
    store: Store,
    llm: Classifier,
    *,
    local: Any | None = None,
    precision: float | None = None,
    redo: bool = False,
    limit: int | None = None,
    progress: PrecodeProgress | None = None,
    on_calibrated: Any = None,
    per_field: bool = True,
) -> CascadeSummary:
    """Pre-code with the cascade: embedded where confident (calibrated), the LLM for the rest.

    ``per_field`` (default) gives each field its own confidence cut; False keeps the single
    cut on the proposal's overall confidence."""
    codebook_version, codebook = store.codebook()
    if local is None:
        try:
            local = _local_classifier(store)
        except ImportError as error:
            raise BackendError(f"--cascade needs the local backend: {error}") from error
    assert local is not None
    summary = CascadeSummary()
    todo = responses_to_precode(store, codebook_version, redo=redo, limit=limit)
    summary.todo = len(todo)
    started = time.perf_counter()
    # The question prior (see LocalClassifier.prepare) is learned once, before calibrating,
    # so the held-out proposals come from the same model that settles answers.
    local.prepare(_prepare_input(store), codebook)
    calibration = calibrate(store, local, codebook, precision=precision, per_field=per_field)
    summary.calibration = calibration
    if on_calibrated is not None:
        on_calibrated(calibration)
    if not todo:
        summary.llm = precode(store, llm, responses=[], progress=progress)
        return summary

    marker = {
        "cut": calibration.cut,
        "field_cuts": calibration.field_cuts,
        "targets": calibration.targets,
        "target_source": calibration.target_source,
        "n_reviewed": calibration.n_reviewed,
        "fallback": calibration.fallback,
    }
    settled, send, route = _settle(store, local, todo, calibration, marker)
    summary.embedded_seconds = time.perf_counter() - started
    summary.settled = len(settled)
    summary.sent = len(send)

    estimate = getattr(llm, "estimate", None)
    if settled and callable(estimate):
        saved = estimate(settled, codebook)
        summary.saved_calls = saved.calls
        summary.saved_prompt_tokens = saved.prompt_tokens
        summary.saved_completion_tokens = saved.completion_tokens
        summary.saved_cost_usd = saved.cost_usd
    summary.llm = precode(store, llm, responses=send, route=route, progress=progress)
    summary.llm.total_responses = store.count_responses()
    return summary
