"""The zero-shot question prior: how far each question's text says which themes its answers
raise (see ``LocalClassifier.prepare``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from schemas import Codebook

#: Answers per question needed before the question prior is trusted (see prepare()).
MIN_QUESTION_ANSWERS = 5
#: concentration(): where, in units of the chance maximum, the question prior starts to
#: apply to cross-cutting codes, and over how wide a range it reaches full strength.
#: (Chosen on the four small codebooks in tests/codebooks and rapid_insight_dev together:
#: from 1.0 to 1.5 no set moves by more than 0.05; 1.3 keeps every one above its baseline.)
CONCENTRATION_FLOOR = 1.3
CONCENTRATION_RANGE = 0.2


def concentration(lean: np.ndarray) -> float:
    """How far a question's answers concentrate on one code, from 0 to 1.

    ``lean`` is how much more the question's answers match each code than all answers do.
    The top code's lean, in standard deviations of the other codes' leans above their mean,
    is set against what the top of that many values reaches by chance (about sqrt(2 ln n)).
    Near chance, the answers spread over many codes (a survey question about virtual wards:
    comfort, safety, equipment, carers...) and the question's text says little about any one
    answer; well above it (a hypothesis whose answers nearly all discuss its one theme), the
    question prior applies in full.
    """
    if len(lean) < 3:
        return 0.0
    order = np.argsort(lean)
    rest = lean[order[:-1]]
    if float(rest.std()) == 0.0:
        return 1.0
    top = float((lean[order[-1]] - rest.mean()) / rest.std())
    ratio = top / float(np.sqrt(2 * np.log(len(lean))))
    return float(np.clip((ratio - CONCENTRATION_FLOOR) / CONCENTRATION_RANGE, 0.0, 1.0))


def centred_question_scores(question_scores: np.ndarray, applies: np.ndarray) -> np.ndarray:
    """How much more each question's text matches each code than the code's other questions."""
    centred = np.zeros_like(question_scores)
    for column in range(question_scores.shape[1]):
        rows = applies[:, column]
        if rows.sum() > 1:
            centred[rows, column] = (
                question_scores[rows, column] - question_scores[rows, column].mean()
            )
    # A code limited to one question ("Pre-requisites" on Q10) has no other question to
    # be compared with: it is compared with the question's other, cross-cutting codes
    # instead. Where every code is limited to its question (ArgKP's key points) there is
    # nothing to compare, and no prior.
    for position in range(len(applies)):
        applicable_here = np.flatnonzero(applies[position])
        single = [c for c in applicable_here if applies[:, c].sum() == 1]
        if single and len(applicable_here) > len(single):
            mean_here = question_scores[position, applicable_here].mean()
            for code_column in single:
                centred[position, code_column] = question_scores[position, code_column] - mean_here
    return centred


def question_prior(
    codebook: Codebook,
    scores: np.ndarray,
    questions: Sequence[str | None],
    question_scores: np.ndarray,
) -> tuple[np.ndarray, dict[str, float]]:
    """The prior (questions x codes) and each question's weight, from the answers' zero-shot
    ``scores`` (with their ``questions``) and the questions' own ``question_scores``."""
    question_ids = codebook.question_ids
    applies = np.array(
        [[t.applies_to(q) for t in codebook.themes] for q in question_ids], dtype=bool
    )
    centred = centred_question_scores(question_scores, applies)
    overall = scores.mean(axis=0) if len(scores) else np.zeros(len(codebook.theme_ids))
    limited = applies.sum(axis=0) == 1  # codes that apply to one question only
    weights: dict[str, float] = {}
    prior = np.zeros_like(centred)
    for position, qid in enumerate(question_ids):
        answers = [i for i, q in enumerate(questions) if q == qid]
        here = applies[position] & (centred[position] != 0)
        weight = concentrated = 0.0
        if len(answers) >= MIN_QUESTION_ANSWERS and here.sum() > 2:
            lean = scores[answers].mean(axis=0) - overall
            a, b = centred[position, here], lean[here]
            if a.std() > 0 and b.std() > 0:
                weight = max(0.0, float(np.corrcoef(a, b)[0, 1]))
            concentrated = concentration(lean[applies[position]])
        # Codes limited to this question keep the agreement weight; cross-cutting codes
        # are pushed only as far as the answers concentrate on one of them.
        scale = np.where(limited, 1.0, concentrated)
        prior[position] = weight * scale * centred[position]
        weights[qid] = round(weight * concentrated, 3)
    return prior, weights
