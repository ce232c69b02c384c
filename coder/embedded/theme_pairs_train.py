"""Training the theme cross-encoder (:mod:`coder.embedded.theme_pairs`) under ``--fine-tune``.

Rows are (code text, answer) pairs labelled ``match`` or ``other``, fed to the stance
cross-encoder's fine-tune (``FineTuneConfig(pairs=True)``: a two-class cosine head is a
binary match loss). Positives are an answer's codes; negatives are other codes that apply
to it and that the humans were not split on (``uncertain_themes`` are left out both ways):
when codes carry a stance category (ArgKP key points) only those of the answer's stance,
since a key point of the other side is never its match. Of the negatives, the
``HARD_NEGATIVES`` the sentence encoder ranks nearest the answer are kept (the confusions
re-ranking must undo) plus ``RANDOM_NEGATIVES`` more, seeded. Above ``MAX_PAIR_ROWS`` rows a
seeded sample of answers is used, so training time stays bounded on 2 cores.

As for the stance cross-encoder, whole questions (motions) are held back when the answers
span four or more, else a seeded 10% of answers (:mod:`coder.embedded.stance_pairs_holdout`);
their pairs are never trained on (early stopping holds back 10% of the rest), so the gate
scores re-ranking on answers, and where it can questions, the model never saw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from coder.embedded.finetune import FineTuneConfig, ProgressCallback, fine_tune
from coder.embedded.stance_pairs import PairStanceModel
from coder.embedded.stance_pairs_holdout import stance_holdout
from coder.embedded.theme_pairs import MATCH, OTHER, code_text
from coder.embedded.training import LabelledExample

#: Fewer labelled answers with a code than this: no cross-encoder (the gate could not
#: tell a gain from noise on the few it would hold back).
MIN_THEME_PAIR_ANSWERS = 50
#: Negatives per answer: the nearest wrong codes, plus a few random ones.
HARD_NEGATIVES = 3
RANDOM_NEGATIVES = 1
#: At most this many training pairs (a seeded sample of answers above it).
MAX_PAIR_ROWS = 12000
#: As the stance cross-encoder: attention across the two segments must be learned.
PAIR_TRAINABLE_LAYERS = 3

#: (answer texts, code texts) -> similarity matrix, used to pick hard negatives.
Ranker = Callable[[Sequence[str], Sequence[str]], np.ndarray]


@dataclass
class PairRows:
    """The training pairs: one LabelledExample per pair (stance = match/other), its first
    segment (the code text) and the labelled answer it came from."""

    rows: list[LabelledExample]
    firsts: list[str]
    answer: list[int]


def theme_examples(examples: Sequence[LabelledExample]) -> list[LabelledExample]:
    """Relevant answers with text and at least one code."""
    return [
        example
        for example in examples
        if example.relevant is not False and example.themes and (example.text or "").strip()
    ]


def sentence_ranker() -> Ranker:
    """Cosine of the shipped sentence encoder's vectors (what zero-shot ranks by)."""
    from coder.embedded.encoder import get_encoder

    encoder = get_encoder()

    def rank(answers: Sequence[str], codes: Sequence[str]) -> np.ndarray:
        return np.asarray(encoder.encode(list(answers)) @ encoder.encode(list(codes)).T)

    return rank


def negatives_for(
    example: LabelledExample, codebook: Any, positions: dict[str, int]
) -> list[int]:
    """Codes that may serve as negatives for ``example`` (indices into codebook.themes)."""
    known = set(example.themes) | set(example.uncertain_themes)
    stance_codes = set(codebook.stance_ids or []) if example.stance is not None else set()
    found = []
    for theme in codebook.themes:
        if theme.id in known or not theme.applies_to(example.question):
            continue
        if theme.category in stance_codes and theme.category != example.stance:
            continue
        found.append(positions[theme.id])
    return found


def pair_rows(
    examples: Sequence[LabelledExample], codebook: Any, ranker: Ranker, seed: int
) -> PairRows:
    """The (code text, answer) training pairs of ``examples`` (see the module docstring)."""
    themes = codebook.themes
    texts = [code_text(theme) for theme in themes]
    positions = {theme.id: i for i, theme in enumerate(themes)}
    similarity = ranker([e.text for e in examples], texts) if examples else np.zeros((0, 0))
    rng = np.random.default_rng(seed)
    out = PairRows([], [], [])
    for index, example in enumerate(examples):
        positives = [positions[code] for code in dict.fromkeys(example.themes) if code in positions]
        pool = negatives_for(example, codebook, positions)
        pool.sort(key=lambda code: -similarity[index, code])
        hard, rest = pool[:HARD_NEGATIVES], pool[HARD_NEGATIVES:]
        extra = [rest[i] for i in rng.permutation(len(rest))[:RANDOM_NEGATIVES]]
        for code, label in [(c, MATCH) for c in positives] + [(c, OTHER) for c in hard + extra]:
            out.rows.append(
                LabelledExample(text=example.text, question=example.question, stance=label)
            )
            out.firsts.append(texts[code])
            out.answer.append(index)
    return out


def sample_answers(
    examples: list[LabelledExample], codebook: Any, seed: int
) -> list[LabelledExample]:
    """A seeded sample of answers whose pairs fit in ``MAX_PAIR_ROWS`` (all when they do)."""
    positions = {theme.id: i for i, theme in enumerate(codebook.themes)}
    per_answer = [
        len(e.themes) + min(len(negatives_for(e, codebook, positions)),
                            HARD_NEGATIVES + RANDOM_NEGATIVES)
        for e in examples
    ]  # fmt: skip
    if sum(per_answer) <= MAX_PAIR_ROWS:
        return examples
    keep = int(len(examples) * MAX_PAIR_ROWS / sum(per_answer))
    order = np.sort(np.random.default_rng(seed).permutation(len(examples))[:keep])
    return [examples[i] for i in order]


def theme_pair_config(config: FineTuneConfig | None) -> FineTuneConfig:
    """The run's settings from the sentence fine-tune's (seed, budget, epochs kept)."""
    base = config or FineTuneConfig()
    return replace(
        base, pairs=True, trainable_layers=max(base.trainable_layers, PAIR_TRAINABLE_LAYERS)
    )


def train_theme_pairs(
    examples: Sequence[LabelledExample],
    codebook: Any,
    config: FineTuneConfig | None = None,
    checkpoint_dir: Path | None = None,
    progress: ProgressCallback | None = None,
    ranker: Ranker | None = None,
    min_answers: int = MIN_THEME_PAIR_ANSWERS,
) -> PairStanceModel | None:
    """A theme cross-encoder fine-tuned on ``examples``' codes, or None when too few.

    Its ``record`` says what it was trained on (answers, pairs, codes, holdout, settings,
    steps, times) with ``kind: themes``; ``held_examples`` / ``held_questions`` are the
    answers the gate scores.
    """
    settings = theme_pair_config(config)
    chosen = sample_answers(theme_examples(examples), codebook, settings.seed)
    if len(chosen) < min_answers:
        return None
    holdout = stance_holdout([e.question for e in chosen], settings.holdout, settings.seed)
    built = pair_rows(chosen, codebook, ranker or sentence_ranker(), settings.seed)
    labels = {row.stance for row in built.rows}
    if labels != {MATCH, OTHER}:
        return None
    held_answers = set(int(i) for i in holdout.rows)
    unseen = np.array([i for i, a in enumerate(built.answer) if a in held_answers], np.int64)
    result = fine_tune(
        built.rows,
        settings,
        checkpoint_dir,
        progress,
        first_segments=built.firsts,
        unseen_rows=unseen if len(unseen) else None,
    )
    model = PairStanceModel.from_result(result)
    model.held_examples = [chosen[i] for i in sorted(held_answers)]
    model.held_questions = list(holdout.questions)
    model.record["params"] = {**model.record.get("params", {}), "kind": "themes"}
    model.record["metrics"] = {
        **result.metrics,
        "kind": "themes",
        "n_answers": len(chosen),
        "n_pairs": len(built.rows),
        "n_matches": sum(row.stance == MATCH for row in built.rows),
        "n_codes": len({code for e in chosen for code in e.themes}),
        "holdout": holdout.record(len(chosen)),
        "negatives": {"hard": HARD_NEGATIVES, "random": RANDOM_NEGATIVES},
        "complete": result.complete,
    }
    return model
