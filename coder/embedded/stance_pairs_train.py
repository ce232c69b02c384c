"""Training a stance cross-encoder (:mod:`coder.embedded.stance_pairs`) under ``--fine-tune``.

The pair run reuses the fine-tuning machinery (:func:`coder.embedded.finetune.fine_tune`:
frozen lower layers computed once, early stopping on held-back answers, a time budget, npz
checkpoints that resume, a seed) with ``FineTuneConfig(pairs=True)``. When the answers span
several questions, whole questions are kept unseen for the gate
(:mod:`coder.embedded.stance_pairs_holdout`) and early stopping holds back a seeded 10% of
the rest; otherwise the gate scores that random 10%. Afterwards the exported ONNX graph
itself scores the gate's answers, so the figure the gate reads is the one proposals will get.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from coder.embedded.finetune import FineTuneConfig, ProgressCallback, fine_tune
from coder.embedded.stance_pairs import PairStanceModel, question_texts
from coder.embedded.stance_pairs_holdout import stance_holdout
from coder.embedded.training import LabelledExample

#: Fewer reviewed answers with a stance than this: no cross-encoder (too few to hold back).
MIN_PAIR_EXAMPLES = 20
#: The cross-encoder trains more of MiniLM than the sentence fine-tune: attention between
#: question and answer is what it must learn, and it starts from a sentence model.
PAIR_TRAINABLE_LAYERS = 3


def stance_examples(examples: Sequence[LabelledExample], codebook: Any) -> list[LabelledExample]:
    """The relevant examples with a stance under a question that asks for one."""
    keep = []
    for example in examples:
        if example.stance is None or example.relevant is False or not (example.text or "").strip():
            continue
        if codebook is not None and not codebook.has_stance(example.question):
            continue
        keep.append(example)
    return keep


def pair_config(config: FineTuneConfig | None) -> FineTuneConfig:
    """The pair run's settings from the sentence fine-tune's (seed, budget, epochs kept)."""
    base = config or FineTuneConfig()
    layers = max(base.trainable_layers, PAIR_TRAINABLE_LAYERS)
    return replace(base, pairs=True, trainable_layers=layers)


def train_stance_pairs(
    examples: Sequence[LabelledExample],
    codebook: Any,
    config: FineTuneConfig | None = None,
    checkpoint_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> PairStanceModel | None:
    """A stance cross-encoder fine-tuned on ``examples``' stances, or None when too few.

    Its ``record`` says what it was trained on (counts per value, seed, settings, steps,
    times, library versions) and its held-back accuracy (``holdout_accuracy``, measured
    with the exported ONNX graph).
    """
    chosen = stance_examples(examples, codebook)
    values = {example.stance for example in chosen}
    if len(chosen) < MIN_PAIR_EXAMPLES or len(values) < 2:
        return None
    settings = pair_config(config)
    firsts = question_texts([e.question for e in chosen], codebook)
    extra, extra_firsts = codebook_pairs(codebook, values)
    holdout = stance_holdout([e.question for e in chosen], settings.holdout, settings.seed)
    held = holdout.rows
    result = fine_tune(
        chosen + extra,
        settings,
        checkpoint_dir,
        progress,
        first_segments=firsts + extra_firsts,
        always_train=len(extra),
        unseen_rows=held if holdout.by == "questions" else None,
    )
    model = PairStanceModel.from_result(result)
    model.held_examples = [chosen[i] for i in held]
    model.held_questions = list(holdout.questions)
    accuracy = None
    if len(held):
        probabilities = model.probabilities(
            [firsts[i] for i in held], [chosen[i].text for i in held]
        )
        predicted = [model.classes[i] for i in probabilities.argmax(1)]
        accuracy = float(
            np.mean([p == chosen[i].stance for p, i in zip(predicted, held, strict=True)])
        )
    counts: dict[str, int] = {}
    for example in chosen:
        counts[str(example.stance)] = counts.get(str(example.stance), 0) + 1
    model.record["metrics"] = {
        **result.metrics,
        "holdout_accuracy": accuracy,
        "n_holdout_scored": int(len(held)),
        "holdout": holdout.record(len(chosen)),
        "stance_counts": counts,
        "n_codebook_rows": len(extra),
        "complete": result.complete,
    }
    return model


def codebook_pairs(codebook: Any, values: set[Any]) -> tuple[list[LabelledExample], list[str]]:
    """Training rows from the codebook: each code whose category is a stance value the
    reviewers used and that names its questions (e.g. an ArgKP key point, "con" its
    motion) gives (question, label) and (question, example) pairs of that stance.

    A code names what a side argues, so it teaches the cross-encoder which way each
    question's arguments lean, also for questions no reviewed answer came from yet.
    """
    rows: list[LabelledExample] = []
    firsts: list[str] = []
    if codebook is None:
        return rows, firsts
    for theme in codebook.themes:
        if theme.category not in values or not theme.questions:
            continue
        for question in theme.questions:
            if not codebook.has_stance(question):
                continue
            for text in dict.fromkeys([theme.label, *theme.examples]):
                if text and text.strip():
                    rows.append(
                        LabelledExample(text=text, question=question, stance=theme.category)
                    )
                    firsts.append(question_texts([question], codebook)[0])
    return rows, firsts
