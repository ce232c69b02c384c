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
#: The fewest held-out answers a cut may rest on (a cut above 3 lucky answers is noise).
MIN_SETTLED = 20
FIELDS = ("themes", "stance", "relevance")


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

    def describe(self) -> str:
        """One paragraph for the run's output."""
        targets = ", ".join(f"{name} {value:.3f}" for name, value in self.targets.items())
        if self.fallback:
            return (
                f"cascade fallback: {self.fallback}; only answers plain rules rule out "
                "(blank, 'did not answer', punctuation) are settled without the LLM"
            )
        if self.cut is None:
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
        return (
            f"cascade: embedded confidence cut {self.cut:.4f}, calibrated on {self.n_reviewed} "
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


# --- agreement of proposals with reviewers --------------------------------------------------
def item_agreement(
    proposal: Proposal, labels: Labels, question: str | None, codebook: Codebook
) -> np.ndarray:
    """Per answer: [theme tp, fp, fn, stance right, stance scored, relevance right].

    Themes are scored as the eval suite scores them: on answers the reviewer kept relevant,
    codes that apply to the question, parents added by the codebook's rule; a "not
    relevant" proposal predicts no theme. Stance only where the reviewer gave one.
    """
    stats = np.zeros(6)
    gold_relevant = labels.relevant is not False
    stats[5] = float(proposal.relevant == gold_relevant)
    if not gold_relevant:
        return stats
    applies = {theme.id for theme in codebook.themes_for(question)}
    gold = set(codebook.with_parents(list(labels.themes))) & applies
    guess = (
        set(codebook.with_parents([t.code for t in proposal.themes])) & applies
        if proposal.relevant
        else set()
    )
    stats[0], stats[1], stats[2] = len(gold & guess), len(guess - gold), len(gold - guess)
    if labels.stance is not None and codebook.stance_ids:
        stats[3] = float(proposal.relevant and proposal.stance == labels.stance)
        stats[4] = 1.0
    return stats


def field_levels(stats: np.ndarray) -> dict[str, float | None]:
    """Themes micro-F1, stance and relevance accuracy from summed :func:`item_agreement` rows."""
    tp, fp, fn, stance_right, stance_n, relevance_right = stats
    denominator = 2 * tp + fp + fn
    return {
        "themes": float(2 * tp / denominator) if denominator else None,
        "stance": float(stance_right / stance_n) if stance_n else None,
        "relevance": None,  # filled by the caller, who knows the answer count
        "_relevance_right": float(relevance_right),
    }


def _levels(stats: np.ndarray, count: int) -> dict[str, float | None]:
    levels = field_levels(stats)
    right = levels.pop("_relevance_right")
    levels["relevance"] = (right or 0.0) / count if count else None
    return levels


def choose_cut(
    confidences: Sequence[float],
    stats: np.ndarray,
    targets: dict[str, float],
    min_settled: int = MIN_SETTLED,
) -> tuple[float | None, dict[str, Any]]:
    """The lowest confidence whose answers at or above it meet every target, and their levels.

    ``stats`` holds one :func:`item_agreement` row per answer. Answers with equal
    confidence stand or fall together. None when no cut over at least ``min_settled``
    answers meets the targets.
    """
    order = np.argsort(-np.asarray(confidences, dtype=float), kind="stable")
    sorted_conf = np.asarray(confidences, dtype=float)[order]
    cumulative = np.cumsum(stats[order], axis=0)
    best: tuple[float | None, dict[str, Any]] = (None, {})
    for k in range(len(order)):
        if k + 1 < len(order) and sorted_conf[k + 1] == sorted_conf[k]:
            continue  # a cut cannot split answers of equal confidence
        if k + 1 < min_settled:
            continue
        levels = _levels(cumulative[k], k + 1)
        if all(levels[name] is None or levels[name] >= targets.get(name, 0.0) for name in FIELDS):  # type: ignore[operator]
            best = (float(sorted_conf[k]), {"share": (k + 1) / len(order), **levels})
    return best


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
) -> tuple[list[Proposal | None], str]:
    """The embedded model's proposals for reviewed answers it did not learn them from."""
    responses = [response for response, _ in pairs]
    if getattr(local, "state", None) is None:
        results = local.propose(responses, codebook)
        return [r.proposal for r in results], "zero-shot proposals (never saw the labels)"
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
    prior = _prepare_input(store)
    for fold in range(k):
        test = order[fold::k]
        train = [examples[i] for i in order if i not in set(test.tolist())]
        sibling = LocalClassifier(encoder=local.encoder, use_stored_model=False)
        sibling.prepare(prior, codebook)
        sibling.fit(train, codebook)
        for index, result in zip(
            test, sibling.propose([responses[i] for i in test], codebook), strict=True
        ):
            proposals[index] = result.proposal
    return proposals, f"{k}-fold out-of-fold proposals of the same training"


def calibrate(
    store: Store,
    local: Any,
    codebook: Codebook,
    *,
    precision: float | None = None,
    min_reviewed: int = MIN_REVIEWED,
    folds: int = FOLDS,
) -> Calibration:
    """Choose the embedded confidence cut on the project's reviewed answers (module docstring)."""
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
    proposals, how = held_out_proposals(store, local, pairs, codebook, folds)
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
    return Calibration(
        cut=cut,
        targets=targets,
        target_source=source,
        n_reviewed=len(pairs),
        held_out=how,
        expected=expected,
    )


# --- the run -------------------------------------------------------------------------------
def _rule_out(text: str) -> bool:
    from coder.embedded.features import non_answer_reason

    return non_answer_reason(text, soft=False) is not None


def settles(result: ProposalResult, response: Response, calibration: Calibration) -> bool:
    """True when the embedded proposal stands without the LLM."""
    proposal = result.proposal
    if not result.ok or proposal is None:
        return False
    if calibration.cut is not None and proposal.confidence >= calibration.cut:
        return True
    # Plain rules (blank, "did not answer") are not a fitted guess: trusted in any case.
    return not proposal.relevant and _rule_out(response.text)


def _local_classifier(store: Store) -> Any:
    # The project's latest trained model, else zero-shot (as 'coder precode' builds it).
    return get_classifier("local", model_store=store)


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
) -> CascadeSummary:
    """Pre-code with the cascade: embedded where confident (calibrated), the LLM for the rest."""
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
    calibration = calibrate(store, local, codebook, precision=precision)
    summary.calibration = calibration
    if on_calibrated is not None:
        on_calibrated(calibration)
    if not todo:
        summary.llm = precode(store, llm, responses=[], progress=progress)
        return summary

    marker = {
        "cut": calibration.cut,
        "targets": calibration.targets,
        "target_source": calibration.target_source,
        "n_reviewed": calibration.n_reviewed,
        "fallback": calibration.fallback,
    }
    send: list[Response] = []
    route: dict[str, dict[str, Any]] = {}
    settled: list[Response] = []
    local_summary = PrecodeSummary()
    for start in range(0, len(todo), 256):
        chunk = todo[start : start + 256]
        rows = []
        for result, response in zip(local.propose(chunk, codebook), chunk, strict=True):
            confidence = result.proposal.confidence if result.proposal is not None else None
            entry = {"route": "cascade:embedded", "cascade": {**marker, "confidence": confidence}}
            if settles(result, response, calibration):
                _record(local_summary, result, response)
                rows.append(_row(result, local, codebook_version, None, {response.id: entry}))
                settled.append(response)
            else:
                send.append(response)
                route[response.id] = {**entry, "route": "cascade:llm"}
        store.add_proposals(rows)
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
