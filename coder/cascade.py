"""The cascade: the embedded model settles what it is sure of, the LLM codes the rest.

``coder precode --backend openai --cascade`` first runs the embedded classifier (backend
``local``: the project's latest trained model, else zero-shot) over the responses to do.
A response whose embedded proposal is at least as confident as a *cut* keeps that
proposal (stored with backend ``local``, ``params.route = "cascade:embedded"``); the
others go to the LLM through the ordinary precode path (``params.route =
"cascade:llm"``). Both rows carry the cut, the item's embedded confidence and the basis of
the cut in ``params.cascade``, so every label says which path made it and why.

**Calibration** (``coder/cascade_calibration.py``, re-exported here) chooses the rule and
the cut on the project's reviewed answers, held out, against a target per field: the LLM's
own measured agreement with the reviewers when they judged enough LLM proposals, else
``--cascade-precision`` or the default.

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
from coder.cascade_calibration import (
    DEFAULT_TARGET,
    FOLDS,
    MIN_REVIEWED,
    RULES,
    Calibration,
    calibrate,
    held_out_proposals,
    llm_levels,
    reviewed,
)
from coder.cascade_cuts import FIELDS, choose_cut, clears, field_confidences, item_agreement
from coder.cascade_joint import joint_features
from coder.errors import BackendError
from coder.precode import (
    PrecodeProgress,
    PrecodeSummary,
    count_result,
    precode,
    prior_input,
    proposal_row,
    responses_to_precode,
)
from coder.store import Store
from coder.twins import TwinSource, twin_result
from schemas import Response

__all__ = [
    "DEFAULT_TARGET",
    "FIELDS",
    "FOLDS",
    "MIN_REVIEWED",
    "RULES",
    "Calibration",
    "CascadeSummary",
    "calibrate",
    "cascade",
    "choose_cut",
    "held_out_proposals",
    "item_agreement",
    "llm_levels",
    "reviewed",
    "settles",
]


@dataclass
class CascadeSummary:
    """What a cascade run did and saved."""

    todo: int = 0
    settled: int = 0
    #: of the settled: answers worded as consistently reviewed answers (coder/twins.py;
    #: the rule's check is ``calibration.twin_check``)
    settled_by_twins: int = 0
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


# --- the run -------------------------------------------------------------------------------
def _rule_out(text: str) -> bool:
    from coder.embedded.features import non_answer_reason

    return non_answer_reason(text, soft=False) is not None


def settles(
    result: ProposalResult,
    response: Response,
    calibration: Calibration,
    confidences: np.ndarray | None = None,
    joint_score: float | None = None,
) -> bool:
    """True when the embedded proposal stands without the LLM (``confidences``: its
    per-field row, needed when the calibration has per-field cuts; ``joint_score``: its
    joint score, needed when the joint rule decides)."""
    proposal = result.proposal
    if not result.ok or proposal is None:
        return False
    if calibration.joint_cut is not None:
        if joint_score is not None and joint_score >= calibration.joint_cut:
            return True
    elif calibration.field_cuts is not None:
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
    result: ProposalResult,
    marker: dict[str, Any],
    by_field: np.ndarray | None,
    joint_score: float | None = None,
) -> dict[str, Any]:
    """The ``params`` a cascade proposal records: its path, the cuts and its confidences."""
    confidence = result.proposal.confidence if result.proposal is not None else None
    entry: dict[str, Any] = {"route": "cascade:embedded", "cascade": {**marker}}
    entry["cascade"]["confidence"] = confidence
    if joint_score is not None:
        entry["cascade"]["joint_score"] = joint_score
    if by_field is not None:
        entry["cascade"]["field_confidence"] = {
            name: float(value)  # not rounded: the cut compares these exact values
            for name, value in zip(("themes", "stance", "relevance"), by_field, strict=True)
        }
    return entry


def _joint_scores(
    calibration: Calibration,
    responses: Sequence[Response],
    proposals: Sequence[Any],
    by_field: np.ndarray | None,
) -> np.ndarray | None:
    """The joint score of each proposal, when the joint rule decides (the features as
    calibration computed them on the held-out answers)."""
    if calibration.joint_score is None or calibration.joint_cut is None or by_field is None:
        return None
    features = joint_features(
        by_field,
        np.array([p.confidence if p is not None else 0.0 for p in proposals]),
        np.array([len(response.text.split()) for response in responses]),
        np.array([len(p.themes) if p is not None else 0 for p in proposals]),
        np.array([bool(p is not None and p.relevant) for p in proposals]),
    )
    return calibration.joint_score.score(features)


def _settle_twins(
    store: Store,
    codebook_version: int,
    todo: Sequence[Response],
    calibration: Calibration,
    marker: dict[str, Any],
) -> tuple[list[Response], list[Response]]:
    """Store the twin proposals of the answers whose reviewed twins agree (when the rule is
    trusted); return (settled, the rest)."""
    twins, check = calibration.twins, calibration.twin_check
    if twins is None or check is None or not check.trusted:
        return [], list(todo)
    entry = {"route": "cascade:twin", "cascade": {**marker, "twin_check": check.as_dict()}}
    source = TwinSource()
    settled: list[Response] = []
    rest: list[Response] = []
    rows = []
    for response in todo:
        twin = twins.twin(response)
        if twin is None:
            rest.append(response)
            continue
        result = twin_result(response, twin, check)
        rows.append(proposal_row(result, source, codebook_version, None, {response.id: entry}))
        settled.append(response)
    store.add_proposals(rows)
    return settled, rest


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
        proposals = [r.proposal for r in results]
        by_field = (
            field_confidences(local, chunk, proposals, codebook)
            if calibration.rule in ("per_field", "joint")
            else None
        )
        joint = _joint_scores(calibration, chunk, proposals, by_field)
        rows = []
        for index, (result, response) in enumerate(zip(results, chunk, strict=True)):
            row = by_field[index] if by_field is not None else None
            score = float(joint[index]) if joint is not None else None
            entry = _route_entry(result, marker, row, score)
            if settles(result, response, calibration, row, score):
                count_result(local_summary, result, response)
                rows.append(
                    proposal_row(result, local, codebook_version, None, {response.id: entry})
                )
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
    rules: Sequence[str] = RULES,
) -> CascadeSummary:
    """Pre-code with the cascade: embedded where confident (calibrated), the LLM for the rest.

    ``rules`` (some of ``single``, ``per_field``, ``joint``; default all) may decide which
    answers settle: the one that settles most held-out reviewed answers at the targets
    does (:func:`calibrate`)."""
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
    local.prepare(prior_input(store), codebook)
    calibration = calibrate(store, local, codebook, precision=precision, rules=rules)
    summary.calibration = calibration
    if on_calibrated is not None:
        on_calibrated(calibration)
    if not todo:
        summary.llm = precode(store, llm, responses=[], progress=progress)
        return summary

    marker = {
        "rule": calibration.rule,
        "cut": calibration.cut,
        "field_cuts": calibration.field_cuts,
        "joint_cut": calibration.joint_cut,
        "joint_model": calibration.joint_score.as_dict() if calibration.joint_score else None,
        "targets": calibration.targets,
        "target_source": calibration.target_source,
        "n_reviewed": calibration.n_reviewed,
        "fallback": calibration.fallback,
    }
    by_twins, todo_left = _settle_twins(store, codebook_version, todo, calibration, marker)
    settled, send, route = _settle(store, local, todo_left, calibration, marker)
    summary.embedded_seconds = time.perf_counter() - started
    summary.settled_by_twins = len(by_twins)
    settled = by_twins + settled
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
