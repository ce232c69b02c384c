"""The steps of ``LocalClassifier.fit``: one function per trained model (relevance, kernel
themes, pair, stance, stacked themes) and the record of what a model was trained on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from coder.embedded.features import content_words, non_answer_reason, parse_examples, stance_only
from coder.embedded.models import (
    MIN_POSITIVES,
    KernelParams,
    KernelThemeModel,
    LabelModel,
    PairModel,
    StackModel,
    choose_regularisation,
    pair_features,
)
from coder.embedded.stance import STANCE_PREFIX, stance_evidence
from coder.embedded.theme_scoring import kernel_margins
from coder.embedded.training import LabelledExample, library_versions
from coder.errors import BackendError
from schemas import Codebook

if TYPE_CHECKING:
    from coder.embedded.classifier import LocalClassifier

#: What fit learns, as a number in every model's version: bump it when fit changes, so that
#: a refit on the same labels is a new version (re-proposing everything), not a rerun of
#: the old one (which re-proposes only what a killed run left). 2: the stacked themes model.
FIT_REVISION = 2
#: Seed of every random choice in fit (negative sampling, folds, subsamples): a refit on
#: the same labels gives the same model and version.
FIT_SEED = 0
#: Pair features are built for at most this many (response, code) pairs when training.
MAX_TRAINING_PAIRS = 60_000
#: Responses whose pair features are built at once during training (bounds memory).
PAIR_CHUNK = 1_000
#: The kernel model keeps every training response; beyond this many it samples.
MAX_KERNEL_EXAMPLES = 7_000
#: Inverse regularisation strengths tried for the stance model (relevance keeps the default).
#: Which one wins depends on the data: 5-fold CV on NHS dev prefers 0.5 (accuracy 0.700 vs
#: 0.699 at 2), unseen ArgKP motions prefer 2 (0.723 vs 0.712), so each fit chooses.
STANCE_C_CHOICES = (0.5, 2.0)


@dataclass
class TrainingData:
    """The labelled examples of one fit with their texts, questions and embeddings."""

    examples: list[LabelledExample]
    texts: list[str]
    questions: list[str | None]
    embeddings: np.ndarray
    #: examples not marked irrelevant (the ones themes and stance learn from)
    relevant_rows: list[int]


def training_data(classifier: LocalClassifier, examples: Sequence[LabelledExample]) -> TrainingData:
    """``examples`` embedded; raises BackendError when there are none."""
    examples = list(examples)
    if not examples:
        raise BackendError("no labelled examples to train on: review some responses first")
    texts = [example.text for example in examples]
    return TrainingData(
        examples=examples,
        texts=texts,
        questions=[example.question for example in examples],
        embeddings=classifier.embed(texts),
        relevant_rows=[i for i, example in enumerate(examples) if example.relevant is not False],
    )


def training_record(
    examples: Sequence[LabelledExample], codebook: Codebook, fields: dict[str, str]
) -> dict[str, Any]:
    """What a model was trained on, for ``coder models``: labels per field, seed, libraries."""
    relevant = [example for example in examples if example.relevant is not False]
    return {
        "examples": {
            "total": len(examples),
            "relevance": {
                "relevant": len(relevant),
                "not relevant": len(examples) - len(relevant),
            },
            "themes": dict(
                sorted(Counter(code for e in relevant for code in e.themes).items())
            ),
            "stance": dict(
                sorted(Counter(str(e.stance) for e in relevant if e.stance is not None).items())
            ),
        },
        "codebook_hash": codebook.content_hash()[:12],
        "seed": FIT_SEED,
        "libraries": library_versions(),
        "fields": dict(fields),
    }


def fit_relevance(data: TrainingData) -> LabelModel | None:
    """Relevance: the plain rules decide blanks; a model learns the rest when it can."""
    examples, texts = data.examples, data.texts
    ruled = [non_answer_reason(text, soft=False) is not None for text in texts]
    rel_rows = [
        index
        for index, example in enumerate(examples)
        if example.relevant is not None and not ruled[index]
    ]
    rel_labels = [str(bool(examples[index].relevant)) for index in rel_rows]
    if len(set(rel_labels)) == 2 and min(rel_labels.count("True"), rel_labels.count("False")) >= 3:
        return LabelModel().fit(
            [texts[i] for i in rel_rows],
            data.embeddings[rel_rows],
            [data.questions[i] for i in rel_rows],
            rel_labels,
        )
    return None


def code_counts(data: TrainingData, codebook: Codebook) -> dict[str, int]:
    """Per code of the codebook, how many relevant examples carry it."""
    counts = {code: 0 for code in codebook.theme_ids}
    for index in data.relevant_rows:
        for code in data.examples[index].themes:
            if code in counts:
                counts[code] += 1
    return counts


def rare_code_counts(
    data: TrainingData, codebook: Codebook, counts: dict[str, int]
) -> dict[str, tuple[int, int]]:
    """Rare codes (some positives, too few for a model of their own): how often they were
    used among the answers they could apply to (see ``LocalClassifier._rare_code_prior``)."""
    rare_codes: dict[str, tuple[int, int]] = {}
    applicable_counts = Counter(data.examples[i].question for i in data.relevant_rows)
    for theme in codebook.themes:
        if 0 < counts[theme.id] < MIN_POSITIVES:
            seen = sum(
                count
                for question, count in applicable_counts.items()
                if theme.applies_to(question)
            )
            rare_codes[theme.id] = (counts[theme.id], seen)
    return rare_codes


def kernel_rows(data: TrainingData) -> list[int]:
    """The relevant examples the kernel model keeps (a seeded sample beyond its maximum)."""
    rows = data.relevant_rows
    if len(rows) > MAX_KERNEL_EXAMPLES:
        rows = sorted(np.random.default_rng(0).choice(rows, MAX_KERNEL_EXAMPLES, replace=False))
    return rows


def fit_kernel(
    classifier: LocalClassifier,
    data: TrainingData,
    rows: list[int],
    kernel_codes: list[str],
    codebook: Codebook,
    params: KernelParams,
    metrics: dict[str, Any],
) -> tuple[KernelThemeModel | None, list[str]]:
    """The per-code kernel model (codes with enough positives, plus stance columns) and the
    texts it was fitted on; (None, []) with too little data."""
    if not kernel_codes or len(data.relevant_rows) < 20:
        return None, []
    examples = data.examples
    stance_columns = [
        STANCE_PREFIX + value
        for value in (codebook.stance_ids if codebook.stance else [])
        if any(examples[i].stance == value for i in rows)
    ]
    kernel_labels = kernel_codes + (stance_columns if len(stance_columns) >= 2 else [])
    column = {code: position for position, code in enumerate(kernel_labels)}
    kernel_input = [data.texts[i] for i in rows]
    kernel_questions = [data.questions[i] for i in rows]
    kernel_embeddings = data.embeddings[rows]
    label_sets = [
        list(examples[i].themes)
        + ([f"{STANCE_PREFIX}{examples[i].stance}"] if examples[i].stance else [])
        for i in rows
    ]
    if params.codebook_examples:
        # The codebook's own examples are labelled data too; they help rare codes
        # most. They are fitted on but never used to choose thresholds.
        extra = [
            (example, theme.id)
            for theme in codebook.themes
            if theme.id in column
            for example in parse_examples(theme.examples)
        ]
        kernel_input += [text for text, _ in extra]
        kernel_questions += [None] * len(extra)
        label_sets += [[code] for _, code in extra]
        if extra:
            kernel_embeddings = np.vstack(
                [kernel_embeddings, classifier.embed([text for text, _ in extra])]
            )
    real = np.arange(len(kernel_input)) < len(rows)
    targets = np.zeros((len(kernel_input), len(kernel_labels)))
    for row, codes_here in enumerate(label_sets):
        for code in codes_here:
            if code in column:
                targets[row, column[code]] = 1.0
    theme_model = KernelThemeModel(labels=kernel_labels, params=params).fit(
        kernel_input, kernel_embeddings, kernel_questions, targets, tune_rows=real
    )
    assert theme_model.cv_f1 is not None
    metrics["kernel_cv_f1"] = dict(
        zip(kernel_codes, np.round(theme_model.cv_f1, 3).tolist(), strict=False)
    )
    return theme_model, kernel_input


def _sampled_pairs(
    data: TrainingData, candidates: list[list[int]], index_of: dict[str, int]
) -> list[list[int]]:
    """Per relevant example, the candidate codes kept for training: every positive, and
    negatives sampled when there are too many pairs (never the uncertain codes)."""
    rng = np.random.default_rng(0)
    keep_probability = min(1.0, MAX_TRAINING_PAIRS / sum(len(c) for c in candidates))
    sampled: list[list[int]] = []
    for row, index in enumerate(data.relevant_rows):
        example = data.examples[index]
        positive = {index_of[c] for c in example.themes if c in index_of}
        uncertain = {index_of[c] for c in example.uncertain_themes if c in index_of}
        chosen = [
            code
            for code in candidates[row]
            if code not in uncertain and (code in positive or rng.random() < keep_probability)
        ]
        sampled.append(chosen)
    return sampled


def fit_pair(
    classifier: LocalClassifier, data: TrainingData, codebook: Codebook
) -> PairModel | None:
    """The pair model over (response, code) features: generalises to unseen codes."""
    codes, _ = classifier.code_vectors(codebook)
    index_of = codes.index()
    pair_rows = data.relevant_rows
    candidates = [
        [index_of[t.id] for t in codebook.themes_for(data.examples[index].question)]
        for index in pair_rows
    ]
    if not sum(len(c) for c in candidates):
        return None
    response_words = [content_words(data.texts[i]) for i in pair_rows]
    sampled = _sampled_pairs(data, candidates, index_of)
    # Features see every candidate (ranks and centres depend on the whole list, as
    # at proposal time); only the sampled pairs are kept, in chunks to bound memory.
    blocks: list[np.ndarray] = []
    truth: list[float] = []
    pair_embeddings = data.embeddings[pair_rows]
    for start in range(0, len(pair_rows), PAIR_CHUNK):
        stop = start + PAIR_CHUNK
        block, pairs = pair_features(
            pair_embeddings[start:stop],
            response_words[start:stop],
            candidates[start:stop],
            codes,
            keep=sampled[start:stop],
        )
        blocks.append(block)
        for row, code_position in pairs:
            example = data.examples[pair_rows[start + row]]
            truth.append(1.0 if codes.ids[code_position] in example.themes else 0.0)
    features = np.vstack(blocks)
    truth_array = np.array(truth)
    if truth_array.sum() >= 10 and (1 - truth_array).sum() >= 10:
        return PairModel().fit(features, truth_array)
    return None


def fit_stance(
    classifier: LocalClassifier,
    data: TrainingData,
    codebook: Codebook,
    pair_model: PairModel | None,
    stance_uses_themes: bool,
    metrics: dict[str, Any],
) -> tuple[LabelModel | None, set[str]]:
    """The stance model and the questions it saw: words, question-tagged words, embeddings,
    and (when codes carry a stance, as ArgKP key points do) how well the response matches
    each stance's codes."""
    if not codebook.stance:
        return None, set()
    examples, embeddings = data.examples, data.embeddings
    stance_rows = [
        i
        for i in data.relevant_rows
        if examples[i].stance is not None and examples[i].stance in codebook.stance_ids
    ]
    stance_labels = [str(examples[i].stance) for i in stance_rows]
    if len(set(stance_labels)) < 2:
        return None, set()
    stance_texts = [data.texts[i] for i in stance_rows]
    stance_question_list = [data.questions[i] for i in stance_rows]
    evidence: np.ndarray | None = None
    if stance_uses_themes and pair_model is not None:
        evidence = stance_evidence(
            classifier,
            embeddings[stance_rows],
            stance_texts,
            stance_question_list,
            codebook,
            pair_model,
        )
    strength = choose_regularisation(
        stance_texts,
        embeddings[stance_rows],
        stance_question_list,
        stance_labels,
        evidence,
        STANCE_C_CHOICES,
    )
    metrics["stance_C"] = strength
    stance_model = LabelModel().fit(
        stance_texts,
        embeddings[stance_rows],
        stance_question_list,
        stance_labels,
        extra=evidence,
        # Balanced classes scored better in 5-fold CV on NHS dev (0.696 vs 0.691).
        balanced=True,
        C=strength,
    )
    return stance_model, {str(data.questions[i]) for i in stance_rows}


def fit_stack(
    classifier: LocalClassifier,
    rows: list[int],
    examples: Sequence[LabelledExample],
    codebook: Codebook,
    theme_model: KernelThemeModel | None,
    embeddings: np.ndarray,
) -> StackModel | None:
    """The few-label theme model (see :class:`StackModel`), or None without data for it.

    Its kernel feature for the reviewed answers is the kernel model's held-out score,
    the same rows in the same order (``rows`` are the kernel model's rows).
    """
    if len(rows) < 10 or not codebook.themes:
        return None
    texts = [examples[i].text for i in rows]
    questions = [examples[i].question for i in rows]
    applicable = np.array(
        [[t.applies_to(q) for t in codebook.themes] for q in questions], dtype=bool
    )
    targets = np.array(
        [[code in examples[i].themes for code in codebook.theme_ids] for i in rows],
        dtype=np.float64,
    )
    held = theme_model.held_out if theme_model is not None else None
    raw = None
    if theme_model is not None and held is not None and len(held) >= len(rows):
        raw = held[: len(rows)]
    margins, covered = kernel_margins(
        theme_model if raw is not None else None, raw, codebook
    )
    if raw is None:
        margins = np.zeros(targets.shape)
    # The same sentence vectors as when proposing in this mode (one encoder pass).
    _, sentence_vectors = classifier.embed_sentences(texts)
    zero_shot = classifier._zero_shot_matrix(
        texts, questions, embeddings[rows], sentence_vectors, codebook
    )
    try:
        return StackModel(codes=list(codebook.theme_ids)).fit(
            zero_shot, applicable, embeddings[rows], questions, targets, margins, covered
        )
    except (BackendError, ValueError):  # one class only: nothing to combine
        return None


def code_examples(data: TrainingData, counts: dict[str, int]) -> dict[str, list[str]]:
    """Per code used at least once, the reviewed answers that carry it (bare stances left
    out): extra examples for zero-shot matching."""
    return {
        code: [
            data.texts[i]
            for i in data.relevant_rows
            if code in data.examples[i].themes and not stance_only(data.texts[i])
        ]
        for code in counts
        if counts[code] > 0
    }


def stance_counts(data: TrainingData) -> dict[str, int]:
    """Reviewed answers per stance value."""
    return dict(
        Counter(
            str(data.examples[i].stance)
            for i in data.relevant_rows
            if data.examples[i].stance is not None
        )
    )
