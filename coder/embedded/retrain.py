"""Refit the local classifier from reviewers' decisions and re-propose unreviewed responses."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coder.embedded.classifier import LocalClassifier
from coder.embedded.training import LabelledExample, examples_from_gold_file, examples_from_store
from coder.errors import BackendError, CoderError
from coder.store import Store
from coder.training_queries import proposed_by, unreviewed_response_ids
from schemas import Codebook

#: Proposals are written in transactions of this many responses.
BATCH = 500


@dataclass
class RetrainSummary:
    """What a retraining run did."""

    model_version: str
    model_id: int
    n_examples: int
    n_reproposed: int
    codebook_version: int
    train_seconds: float
    propose_seconds: float
    source: str
    metrics: dict[str, Any] = field(default_factory=dict)
    #: per field (themes, stance, relevance): what proposes it now (see coder/embedded/gate.py)
    fields: dict[str, str] = field(default_factory=dict)
    #: per field: label -> [count before, count after] over the re-proposed responses
    changes: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def label_counts(proposals: Iterable[Any]) -> dict[str, Counter[str]]:
    """Counts per field of a set of proposals: stance values, relevance, themes."""
    counts: dict[str, Counter[str]] = {
        "stance": Counter(),
        "relevance": Counter(),
        "themes": Counter(),
    }
    for proposal in proposals:
        if proposal is None:
            continue
        counts["relevance"]["relevant" if proposal.relevant else "not relevant"] += 1
        if proposal.relevant:
            counts["stance"][proposal.stance or "(none)"] += 1
            counts["themes"].update(proposal.theme_codes or ["(no theme)"])
    return counts


def compare_counts(
    before: dict[str, Counter[str]], after: dict[str, Counter[str]]
) -> dict[str, dict[str, list[int]]]:
    """label -> [before, after] per field, for every label seen in either."""
    return {
        name: {
            label: [before[name][label], after[name][label]]
            for label in sorted(set(before[name]) | set(after[name]))
        }
        for name in before
    }


def retrain_and_repropose(
    store: Store,
    codebook_version: int | None = None,
    *,
    from_file: str | Path | None = None,
    split: str | None = None,
    repropose: bool = True,
    classifier: LocalClassifier | None = None,
) -> RetrainSummary:
    """Fit on the project's final labels (or a gold-format file), store the model, re-propose.

    New proposal rows are appended for responses without any decision; earlier proposals are
    kept (the store is append-only), and each new row carries the new ``model_version``.
    Pass ``classifier`` to reuse one whose embedding cache is warm (the TUI does).
    """
    try:
        version, codebook = store.codebook(codebook_version)
    except LookupError as error:  # NoCodebookError names the file already
        raise CoderError(str(error)) from error
    examples, source = training_examples(store, codebook, version, from_file, split)
    classifier = classifier or LocalClassifier(store, use_stored_model=False)
    classifier.model_store = store
    # The zero-shot question prior is learned from all of the project's answers, so the
    # gate compares the trained model with the zero-shot proposals the project really gets.
    classifier.prepare(list(store.responses()), codebook)
    started = time.perf_counter()
    state = classifier.fit(examples, codebook)
    train_seconds = time.perf_counter() - started
    model_id = classifier.save(store, codebook_version=version)
    reproposed = 0
    started = time.perf_counter()
    changes: dict[str, dict[str, list[int]]] = {}
    if repropose:
        reproposed, changes = repropose_unreviewed(store, classifier, codebook, version)
    return RetrainSummary(
        model_version=state.version,
        model_id=model_id,
        n_examples=len(examples),
        n_reproposed=reproposed,
        codebook_version=version,
        train_seconds=round(train_seconds, 2),
        propose_seconds=round(time.perf_counter() - started, 2),
        source=source,
        metrics=state.metrics,
        fields=dict(state.fields),
        changes=changes,
    )


def training_examples(
    store: Store,
    codebook: Codebook,
    version: int,
    from_file: str | Path | None,
    split: str | None,
) -> tuple[list[LabelledExample], str]:
    """The labelled examples to fit on (the project's decisions, or a gold-format file) and
    where they came from; raises when there are none or none of a file's labels are codes."""
    examples: list[LabelledExample]
    if from_file is not None:
        examples = examples_from_gold_file(from_file, split=split)
        source = str(from_file)
    else:
        examples = examples_from_store(store)
        source = "decisions"
    if not examples:
        raise BackendError(
            f"{source}: no labelled examples to train on"
            + (": review some responses first" if from_file is None else "")
        )
    unknown = sorted(
        {code for example in examples for code in example.themes} - set(codebook.theme_ids)
    )
    if (
        unknown
        and from_file is not None
        and len(unknown) == len({code for example in examples for code in example.themes})
    ):
        raise CoderError(
            f"{from_file}: none of its labels are codes of codebook version {version} "
            f"(e.g. {unknown[0]!r}); add the matching codebook first"
        )
    return examples, source


def repropose_unreviewed(
    store: Store, classifier: LocalClassifier, codebook: Codebook, version: int
) -> tuple[int, dict[str, dict[str, list[int]]]]:
    """Append the classifier's proposals for every response without a decision; returns how
    many and the label counts before and after.

    A rerun after an interrupted one (same labels, so the same version) continues where it
    stopped: a response never gets two proposals from one model version.
    """
    done = proposed_by(store, classifier.model_version)
    pending = [rid for rid in unreviewed_response_ids(store) if rid not in done]
    run_id = f"retrain-{uuid.uuid4().hex[:8]}"
    before: dict[str, Counter[str]] = label_counts([])
    after: dict[str, Counter[str]] = label_counts([])
    reproposed = 0
    for start in range(0, len(pending), BATCH):
        batch_ids = pending[start : start + BATCH]
        responses = list(store.responses(ids=batch_ids))
        previous = store.current_proposals(batch_ids)
        for name, counted in label_counts(stored.proposal for stored in previous.values()).items():
            before[name].update(counted)
        results = classifier.propose(responses, codebook)
        for name, counted in label_counts(result.proposal for result in results).items():
            after[name].update(counted)
        store.add_proposals(
            {
                "response_id": result.response_id,
                "backend": classifier.backend,
                "model": classifier.model,
                "proposal": result.proposal,
                "codebook_version": version,
                "model_version": result.model_version,
                "params": result.params,
                "status": "ok" if result.ok else "failed",
                "error": result.error,
                "run_id": run_id,
            }
            for result in results
        )
        reproposed += len(results)
    return reproposed, compare_counts(before, after)
