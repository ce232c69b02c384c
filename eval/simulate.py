"""Reviewer effort, measured: replay a gold set as the reviewer of a real project.

``coder eval simulate GOLD`` builds a project file from the gold items (codebook and
answers), pre-codes it zero-shot with the local classifier, and then reviews it as coder's
review app does: items in the app's queue order (``coder.review.order_entries``, least
confident first), each decision written with ``coder.review.record_decision``, and every
``retrain_every`` decisions the model retrained on the decisions so far and the unreviewed
answers re-proposed (``coder.embedded.retrain.retrain_and_repropose``, as the app's
``--retrain-every`` does), after which the queue is re-ordered by the new confidences.
The reviewer's labels are the gold labels.

For each reviewed answer the proposal on screen is compared with the gold labels:
*accepted unchanged* when they agree, otherwise the *label edits* needed, counted as theme
additions + theme removals + a stance change + a relevance change. Marking an answer not
relevant is one edit (its themes and stance go with it). Codes the gold set marks as
uncertain are not counted either way. The same counts are given for two references on
the same answers: coding with no model (every label entered by hand, from blank labels)
and the zero-shot proposals without retraining.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coder import review
from coder.errors import CoderError
from coder.store import Store
from eval.gold import GoldItem
from schemas import Codebook, Labels, Proposal, Response

#: The simulated reviewer's name in the project's decisions.
REVIEWER = "simulated-reviewer"


@dataclass
class Effort:
    """Reviewer effort under one policy, over the same answers."""

    policy: str
    responses: int = 0
    accepted_unchanged: int = 0
    label_edits: int = 0
    theme_edits: int = 0
    stance_edits: int = 0
    relevance_edits: int = 0

    def add(self, edits: dict[str, int]) -> None:
        """Count one reviewed answer with ``edits`` (from :func:`label_edits`)."""
        self.responses += 1
        total = sum(edits.values())
        self.accepted_unchanged += total == 0
        self.label_edits += total
        self.theme_edits += edits["themes"]
        self.stance_edits += edits["stance"]
        self.relevance_edits += edits["relevance"]

    def per_100(self) -> dict[str, float | None]:
        """Accepted unchanged and label edits per 100 answers (None with no answers)."""
        if not self.responses:
            return {"accepted_unchanged": None, "label_edits": None}
        scale = 100.0 / self.responses
        return {
            "accepted_unchanged": round(self.accepted_unchanged * scale, 1),
            "label_edits": round(self.label_edits * scale, 1),
            "theme_edits": round(self.theme_edits * scale, 1),
            "stance_edits": round(self.stance_edits * scale, 1),
            "relevance_edits": round(self.relevance_edits * scale, 1),
        }

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "per_100": self.per_100()}


@dataclass
class SimulationResult:
    """What :func:`simulate` measured."""

    n_items: int
    retrain_every: int
    fine_tune: bool
    seed: int
    policies: dict[str, Effort]
    retrains: int = 0
    #: per retrain: decisions so far, model version, what proposes each field
    retrain_log: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    project: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_items": self.n_items,
            "retrain_every": self.retrain_every,
            "fine_tune": self.fine_tune,
            "seed": self.seed,
            "retrains": self.retrains,
            "retrain_log": self.retrain_log,
            "seconds": round(self.seconds, 1),
            "project": self.project,
            "policies": {name: effort.as_dict() for name, effort in self.policies.items()},
        }


def gold_target(item: GoldItem) -> Labels:
    """The labels the simulated reviewer gives ``item`` (its gold labels)."""
    relevant = item.relevant is not False
    return Labels(
        question=item.question,
        stance=item.stance if relevant else None,
        relevant=relevant,
        themes=sorted(set(item.labels)) if relevant else [],
    )


def label_edits(
    start: Labels, target: Labels, codebook: Codebook, uncertain: Sequence[str] = ()
) -> dict[str, int]:
    """Edits that turn the labels on screen (``start``) into ``target``, per field.

    A relevance change is one edit; when the target is not relevant nothing else counts
    (marking an answer off-topic clears it). Otherwise: one per theme added or removed
    (``uncertain`` codes excepted), and one for a different stance where the question has a
    stance. A start marked not relevant has no themes or stance to keep.
    """
    edits = {"themes": 0, "stance": 0, "relevance": 0}
    start_relevant = start.relevant is not False
    target_relevant = target.relevant is not False
    if start_relevant != target_relevant:
        edits["relevance"] = 1
    if not target_relevant:
        return edits
    skip = set(uncertain)
    shown = set(start.themes) - skip if start_relevant else set()
    wanted = set(target.themes) - skip
    edits["themes"] = len(shown ^ wanted)
    if codebook.stance is not None and codebook.has_stance(target.question):
        shown_stance = start.stance if start_relevant else None
        edits["stance"] = int(shown_stance != target.stance)
    return edits


def _labels_of(proposal: Proposal | None, question: str | None) -> Labels:
    if proposal is None:
        return Labels(question=question)
    return Labels.from_proposal(proposal)


def build_project(path: Path, codebook: Codebook, items: Sequence[GoldItem]) -> Store:
    """A new project file holding ``codebook`` and the gold items' answers (no labels)."""
    if path.exists():
        raise CoderError(f"{path}: already exists; simulate builds a new project file")
    store = Store(path)
    store.save_codebook(codebook, source="simulate")
    store.add_responses(
        Response(id=item.id, text=item.text, question=item.question) for item in items
    )
    return store


RetrainFunction = Callable[[Store, Any], dict[str, Any]]


def _retrain_local(store: Store, classifier: Any) -> dict[str, Any]:
    from coder.embedded.retrain import retrain_and_repropose

    summary = retrain_and_repropose(store, classifier=classifier)
    return {"model_version": summary.model_version, "fields": summary.fields}


def _fine_tuned(seed: int) -> RetrainFunction:
    """Retraining as ``coder train --fine-tune --seed SEED`` does it."""
    from coder.embedded.finetune import config_from, require_finetune
    from coder.embedded.finetune_run import fine_tune_project

    require_finetune()

    def retrain(store: Store, classifier: Any) -> dict[str, Any]:
        result = fine_tune_project(store, None, config=config_from(seed=seed), repropose=True)
        summary = result.retrain
        return {"model_version": summary.model_version, "fields": summary.fields}

    return retrain


def _sample(items: Sequence[GoldItem], limit: int | None, seed: int) -> list[GoldItem]:
    """The answers to review: a seeded shuffle of ``items`` (the import order), the first
    ``limit`` of it; each needs its own id."""
    chosen = list(items)
    random.Random(seed).shuffle(chosen)
    if limit is not None:
        chosen = chosen[:limit]
    if not chosen:
        raise CoderError("no gold items to simulate")
    if len({item.id for item in chosen}) != len(chosen):
        raise CoderError("the gold items' ids are not unique: each answer needs its own id")
    return chosen


def _policies(retrain_every: int) -> dict[str, Effort]:
    """The three ways of coding that are counted on the same answers."""
    return {
        "no_model": Effort("no model (every label by hand)"),
        "zero_shot": Effort("zero-shot, no retraining"),
        "retrained": Effort(
            f"zero-shot, retrained every {retrain_every}" if retrain_every else "zero-shot"
        ),
    }


def _review_answer(
    store: Store,
    index: review.ReviewIndex,
    entry: Any,
    item: GoldItem,
    zero_shot: dict[str, Proposal | None],
    codebook: Codebook,
    policies: dict[str, Effort],
) -> None:
    """Count each policy's edits for one answer, then record its gold labels as the
    simulated reviewer's decision (as the review app would)."""
    target = gold_target(item)
    shown = review.load_item(store, entry, REVIEWER)
    uncertain = list(item.uncertain_labels)
    policies["retrained"].add(label_edits(shown.labels, target, codebook, uncertain))
    policies["zero_shot"].add(
        label_edits(_labels_of(zero_shot.get(item.id), item.question), target,
                    codebook, uncertain)
    )  # fmt: skip
    policies["no_model"].add(
        label_edits(Labels(question=item.question), target, codebook, uncertain)
    )
    review.record_decision(
        store,
        index,
        response_id=item.id,
        reviewer=REVIEWER,
        action=review.decision_action(shown, target, blind=False),
        labels=target,
    )


def _replay(
    store: Store,
    classifier: Any,
    codebook: Codebook,
    by_id: dict[str, GoldItem],
    zero_shot: dict[str, Proposal | None],
    result: SimulationResult,
    retrain: RetrainFunction,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Review every answer in the queue's order, retraining every ``result.retrain_every``."""
    index = review.ReviewIndex(store)
    order = review.order_entries(index.entries, "confidence")
    position = 0
    decisions = 0
    while True:
        found = review.next_unreviewed(order, REVIEWER, position, wrap=True)
        if found is None:
            break
        entry = order[found]
        item = by_id[entry.response_id]
        _review_answer(store, index, entry, item, zero_shot, codebook, result.policies)
        decisions += 1
        position = found
        if progress is not None:
            progress(decisions, len(by_id))
        every = result.retrain_every
        if every and decisions % every == 0 and decisions < len(by_id):
            info = retrain(store, classifier)
            result.retrains += 1
            result.retrain_log.append({"decisions": decisions, **info})
            # As the review app does after a retrain: reload, reorder by confidence,
            # continue from the top of the new order.
            index.load()
            order = review.order_entries(index.entries, "confidence")
            position = 0


def simulate(
    codebook: Codebook,
    items: Sequence[GoldItem],
    project: Path,
    *,
    retrain_every: int = 50,
    fine_tune: bool = False,
    limit: int | None = None,
    seed: int = 0,
    encoder: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationResult:
    """Replay ``items`` as the reviewer of a new project at ``project``; see the module doc.

    ``limit`` keeps a seeded sample of that many items (``seed`` also breaks the queue's
    ties, which are in import order: the items are imported in a seeded shuffle).
    ``retrain_every`` 0 never retrains (the zero-shot proposals stay). ``encoder`` lets a
    caller share a warm sentence encoder.
    """
    from coder.embedded.classifier import LocalClassifier
    from coder.precode import precode

    if retrain_every < 0:
        raise CoderError("--retrain-every must be 0 (never) or more")
    started = time.perf_counter()
    chosen = _sample(items, limit, seed)
    store = build_project(project, codebook, chosen)
    retrain = _fine_tuned(seed) if fine_tune else _retrain_local
    try:
        classifier = LocalClassifier(store, encoder=encoder, use_stored_model=False)
        classifier.prepare(list(store.responses()), codebook)
        precode(store, classifier)
        zero_shot = {
            rid: stored.proposal for rid, stored in store.current_proposals().items()
        }
        result = SimulationResult(
            n_items=len(chosen),
            retrain_every=retrain_every,
            fine_tune=fine_tune,
            seed=seed,
            policies=_policies(retrain_every),
            project=str(project),
        )
        by_id = {item.id: item for item in chosen}
        _replay(store, classifier, codebook, by_id, zero_shot, result, retrain, progress)
        result.seconds = time.perf_counter() - started
        return result
    finally:
        store.close()


def per_100_rows(result: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(policy, accepted unchanged per 100, label edits per 100) for a result's dict."""
    return [
        (
            effort["policy"],
            effort["per_100"]["accepted_unchanged"],
            effort["per_100"]["label_edits"],
        )
        for effort in result["policies"].values()
    ]
