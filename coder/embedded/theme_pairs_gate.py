"""Whether a trained state re-ranks its codes with the theme cross-encoder.

The cross-encoder (:mod:`coder.embedded.theme_pairs`) never trained on some labelled answers:
whole questions when the answers span several, else a seeded 10%. The classifier is fitted
again without them (and without any answer to a held-back question, with its own gate, so
"current" is what the project would otherwise get) and scores them; the cross-encoder then
re-ranks those scores at each blend weight of ``WEIGHTS``. Re-ranking is chosen
(``fields['theme_pairs'] = 'rerank'``) only when, at the best weight, each answer's ranking
of its codes (average precision of its gold codes among its candidates) is better by at
least 1 point and by more than 1.645 standard errors of the paired differences, as for the
stance cross-encoder: it costs a few pair passes per answer. The blend then also decides
which codes are proposed (``'rerank+decide'``) only when that raises the held-back themes
micro-F1 by at least ``DECIDE_MIN_GAIN``; otherwise the current model's decisions stay and
only the scores (the ranking, confidences, key-point matching) change.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from coder.embedded.gate import _responses
from coder.embedded.stance_pairs import PairStanceModel
from coder.embedded.stance_pairs_gate import (
    gate_report,
    held_back_by,
    pairs_win,
    refit_without_held,
)
from coder.embedded.theme_pairs import RERANK, RERANK_DECIDE, STATE_KEY, WEIGHT_KEY, rerank
from coder.embedded.theme_scoring import ThemeScores, score_themes
from coder.embedded.training import LabelledExample
from schemas import Codebook

if TYPE_CHECKING:
    from coder.embedded.classifier import LocalClassifier

#: Blend weights tried (the cross-encoder's share of the log-odds).
WEIGHTS = (0.5, 0.75, 1.0)
#: The blend decides proposals only when it raises held-back micro-F1 by this much.
DECIDE_MIN_GAIN = 0.01


def _key(example: LabelledExample) -> tuple[str, str | None]:
    return (example.text, example.question)


def ranking_precision(
    probabilities: np.ndarray, candidates: Sequence[Sequence[int]], gold: Sequence[set[int]]
) -> np.ndarray:
    """Per answer with a gold code among its candidates: the average precision of its gold
    codes in its candidates ranked by probability."""
    out = []
    for row, here in enumerate(candidates):
        truth = gold[row] & set(here)
        if not truth:
            continue
        order = sorted(here, key=lambda code: -probabilities[row, code])
        hits, total = 0, 0.0
        for rank, code in enumerate(order, start=1):
            if code in truth:
                hits += 1
                total += hits / rank
        out.append(total / len(truth))
    return np.asarray(out, dtype=float)


def micro_f1(assigned: np.ndarray, gold: Sequence[set[int]], skip: Sequence[set[int]]) -> float:
    """Micro-F1 of the assigned codes (codes the humans were split on are not counted)."""
    tp = fp = fn = 0
    for row, truth in enumerate(gold):
        predicted = set(np.flatnonzero(assigned[row]).tolist()) - skip[row]
        tp += len(predicted & truth)
        fp += len(predicted - truth)
        fn += len(truth - predicted)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def best_match_precision(probabilities: np.ndarray, candidates: Sequence[Sequence[int]],
                         gold: Sequence[set[int]]) -> float:
    """Average precision, over answers ranked by their best code's score, of that code being
    right: the cross-answer ranking key-point matching scores (without its top-half cut)."""
    from sklearn.metrics import average_precision_score

    hits, scores = [], []
    for row, here in enumerate(candidates):
        if not here:
            continue
        best = max(here, key=lambda code: probabilities[row, code])
        hits.append(best in gold[row])
        scores.append(probabilities[row, best])
    if not any(hits):
        return 0.0
    return float(average_precision_score(hits, scores))


def held_scores(
    sibling: LocalClassifier, held: Sequence[LabelledExample], codebook: Codebook
) -> ThemeScores:
    """The sibling classifier's theme scores of the held-back answers."""
    responses = _responses(held)
    texts = [response.text or "" for response in responses]
    questions = [response.question for response in responses]
    codes, per_code = sibling.code_vectors(codebook)
    return score_themes(sibling, texts, questions, sibling.embed(texts), codebook, codes, per_code)


def compare(
    model: PairStanceModel,
    held: Sequence[LabelledExample],
    codebook: Codebook,
    scored: ThemeScores,
) -> dict[str, Any]:
    """Held-back figures of the current scores and of re-ranking at each weight."""
    position = {theme.id: i for i, theme in enumerate(codebook.themes)}
    gold = [{position[c] for c in e.themes if c in position} for e in held]
    skip = [{position[c] for c in e.uncertain_themes if c in position} for e in held]
    candidates = [[c for c in here if c not in skip[row]] for row, here in enumerate(scored.candidates)]
    texts = [e.text for e in held]
    current = ranking_precision(scored.probabilities, candidates, gold)
    figures: dict[str, Any] = {
        "current": {
            "ranking_ap": round(float(current.mean()), 4) if len(current) else None,
            "best_match_ap": round(best_match_precision(scored.probabilities, candidates, gold), 4),
            "micro_f1": round(micro_f1(scored.assigned, gold, skip), 4),
        }
    }
    best: tuple[float, float, np.ndarray] | None = None
    for weight in WEIGHTS:
        probabilities, _ = rerank(model, texts, codebook, scored.probabilities,
                                  scored.assigned, candidates, weight, False)  # fmt: skip
        ranked = ranking_precision(probabilities, candidates, gold)
        figures[f"rerank_{weight}"] = {
            "ranking_ap": round(float(ranked.mean()), 4) if len(ranked) else None,
            "best_match_ap": round(best_match_precision(probabilities, candidates, gold), 4),
        }
        if len(ranked) and (best is None or ranked.mean() > best[1]):
            best = (weight, float(ranked.mean()), ranked)
    if best is None:
        return {**figures, "chosen": False, "why": "no held-back answer has a code"}
    weight, _, ranked = best
    chosen, stats = pairs_win(ranked, current)
    _, decided = rerank(model, texts, codebook, scored.probabilities, scored.assigned,
                        candidates, weight, True)  # fmt: skip
    decide_f1 = micro_f1(decided, gold, skip)
    decide = chosen and decide_f1 >= figures["current"]["micro_f1"] + DECIDE_MIN_GAIN
    return {**figures, **stats, "weight": weight, "decide_micro_f1": round(decide_f1, 4),
            "chosen": chosen, "decides": decide}  # fmt: skip


def gate_theme_pairs(
    classifier: LocalClassifier,
    examples: Sequence[LabelledExample],
    codebook: Codebook,
    fit_without: Any,
) -> dict[str, Any]:
    """Set ``fields['theme_pairs']`` when re-ranking clearly wins; the report.

    ``fit_without(classifier, examples)`` fits a sibling classifier on the given examples
    (the caller's settings), so its scores on the held-back answers are out of sample.
    """
    started = time.perf_counter()
    state, model = classifier.state, classifier.theme_pairs
    assert state is not None and model is not None
    report = gate_report(model)
    held = list(model.held_examples)
    if not held:
        return {**report, "chosen": False, "why": "no held-back answers"}
    sibling, unseen = refit_without_held(classifier, examples, model, fit_without, _key)
    figures = compare(model, held, codebook, held_scores(sibling, held, codebook))
    if figures.get("chosen"):
        state.fields[STATE_KEY] = RERANK_DECIDE if figures["decides"] else RERANK
        state.params[WEIGHT_KEY] = figures["weight"]
    report.update(
        {
            "n_held_back": len(held),
            "current_mode": (sibling.state.fields if sibling.state else {}).get("themes"),
            **held_back_by(unseen),
            **figures,
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
    return report
