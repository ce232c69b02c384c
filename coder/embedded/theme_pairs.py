"""A theme cross-encoder: MiniLM over (code text, answer) pairs that re-ranks a few codes.

The sentence encoder embeds an answer and a code's text apart and compares the vectors; a
cross-encoder reads both at once (``[CLS] code [SEP] answer [SEP]``, segment id 1 on the
answer), which is what the best KPA-2021 key-point matchers did. Under ``--fine-tune
--theme-pairs`` a copy of MiniLM is fine-tuned on (code text, answer) pairs with a binary
match head (:mod:`coder.embedded.theme_pairs_train`: the stance cross-encoder's machinery
with the two classes ``match`` / ``other``), stored in the project's ``encoders`` table like
the stance one (ONNX, ``minilm-l6-pair-<sha12>``, its head and training record in the row's
JSON) and loaded without JAX.

Proposing, it does not score every code: it re-ranks the current model's top
``RERANK_TOP_K`` codes of each answer (every candidate when an answer has at most
``SMALL_CANDIDATES``), so the cost is a handful of pair passes per answer. A re-ranked code's
probability is a blend, in log-odds, of the cross-encoder's match probability and the current
model's; codes outside the top k are kept below the re-ranked ones. Whether a state re-ranks,
and whether the blend also decides which codes are proposed, is the gate's choice
(:mod:`coder.embedded.theme_pairs_gate`, ``TrainedState.fields['theme_pairs']``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from coder.embedded.model_tools import sigmoid
from coder.embedded.stance_pairs import PairStanceModel, state_pair_model

if TYPE_CHECKING:
    from coder.embedded.classifier import LocalClassifier

#: The key of a trained state's params that names its theme cross-encoder.
STATE_KEY = "theme_pairs"
#: ... and the one holding the blend weight the gate chose.
WEIGHT_KEY = "theme_pairs_weight"
#: Field modes (``TrainedState.fields['theme_pairs']``): re-rank scores only, or also decide.
RERANK = "rerank"
RERANK_DECIDE = "rerank+decide"
#: The head's classes (sorted, as the fine-tune's stance vocabulary sorts them).
MATCH, OTHER = "match", "other"
#: Re-rank this many of each answer's best codes ...
RERANK_TOP_K = 8
#: ... or all of its candidates when it has no more than this many (ArgKP motions: 3 to 11).
SMALL_CANDIDATES = 12
#: Weight of the cross-encoder's log-odds in the blend when the gate chose none.
DEFAULT_WEIGHT = 0.75


def code_text(theme: Any) -> str:
    """The first segment of a code's pairs: its name and definition as the codebook gives
    them (the definition alone when it already starts with the name)."""
    label = str(getattr(theme, "label", "") or theme.id).strip()
    definition = str(getattr(theme, "definition", "") or "").strip()
    if not definition or definition == label:
        return label
    if label.lower() in definition.lower():
        return definition
    return f"{label}: {definition}"


#: Pairs scored recently, per model: ``coder eval`` and the review queue ask for the same
#: answers' scores twice (propose, then code_scores), each pass a full encoder run.
_recent: dict[tuple[str, str, str], float] = {}
_recent_lock = threading.Lock()
RECENT_PAIRS = 100_000


def match_probabilities(
    model: PairStanceModel, firsts: Sequence[str], answers: Sequence[str]
) -> np.ndarray:
    """The match probability of each (code text, answer) pair."""
    keys = [(model.name, first, answer) for first, answer in zip(firsts, answers, strict=True)]
    with _recent_lock:
        known = {key: _recent[key] for key in keys if key in _recent}
    missing = [key for key in dict.fromkeys(keys) if key not in known]
    if missing:
        found = model.probabilities([k[1] for k in missing], [k[2] for k in missing])
        known.update(zip(missing, found[:, model.classes.index(MATCH)].tolist(), strict=True))
        with _recent_lock:
            if len(_recent) + len(missing) > RECENT_PAIRS:
                _recent.clear()
            _recent.update((key, known[key]) for key in missing)
    return np.array([known[key] for key in keys], dtype=float)


def rerank_rows(
    probabilities: np.ndarray, candidates: Sequence[Sequence[int]]
) -> list[list[int]]:
    """Per answer, the candidate codes to re-rank: all when few, else the top k by score."""
    chosen = []
    for row, here in enumerate(candidates):
        here = list(here)
        if len(here) > SMALL_CANDIDATES:
            order = np.argsort(-probabilities[row, here], kind="stable")[:RERANK_TOP_K]
            here = [here[i] for i in order]
        chosen.append(here)
    return chosen


def blend(current: np.ndarray, match: np.ndarray, weight: float) -> np.ndarray:
    """Log-odds blend of the current probability and the cross-encoder's."""
    current = np.clip(current, 1e-6, 1 - 1e-6)
    match = np.clip(match, 1e-6, 1 - 1e-6)
    logits = weight * np.log(match / (1 - match)) + (1 - weight) * np.log(current / (1 - current))
    return np.asarray(sigmoid(logits))


def rerank(
    model: PairStanceModel,
    texts: Sequence[str],
    codebook: Any,
    probabilities: np.ndarray,
    assigned: np.ndarray,
    candidates: Sequence[Sequence[int]],
    weight: float,
    decide: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """New (probabilities, assigned) with each answer's top codes re-ranked.

    ``decide``: a re-ranked code is proposed when its blend is at least 0.5 (an answer
    keeps at least its best code when it had one); otherwise the current decisions stay.
    """
    probabilities = probabilities.copy()
    assigned = assigned.copy()
    chosen = rerank_rows(probabilities, candidates)
    pairs = [(row, code) for row, codes in enumerate(chosen) for code in codes]
    if not pairs:
        return probabilities, assigned
    themes = codebook.themes
    match = match_probabilities(
        model, [code_text(themes[code]) for _, code in pairs], [texts[row] for row, _ in pairs]
    )
    rows = np.array([row for row, _ in pairs])
    cols = np.array([code for _, code in pairs])
    blended = blend(probabilities[rows, cols], match, weight)
    floor = np.ones(len(texts))
    np.minimum.at(floor, rows, blended)
    for row, here in enumerate(candidates):
        # Codes left out of the re-ranking stay below every re-ranked one.
        reranked = set(chosen[row])
        rest = [code for code in here if code not in reranked]
        if rest:
            probabilities[row, rest] = np.minimum(probabilities[row, rest], floor[row] * 0.999)
    probabilities[rows, cols] = blended
    if decide:
        had_any = assigned.any(axis=1)
        assigned[rows, cols] = blended >= 0.5
        for empty in np.flatnonzero(had_any & ~assigned.any(axis=1)):
            here = list(candidates[int(empty)])
            assigned[empty, here[int(np.argmax(probabilities[empty, here]))]] = True
    return probabilities, assigned


def theme_pair_model(classifier: LocalClassifier) -> PairStanceModel:
    """The theme cross-encoder a state names: the one in memory, else the stored one."""
    return state_pair_model(classifier, STATE_KEY, getattr(classifier, "theme_pairs", None))


def state_rerank(
    classifier: LocalClassifier,
    texts: Sequence[str],
    codebook: Any,
    probabilities: np.ndarray,
    assigned: np.ndarray,
    candidates: Sequence[Sequence[int]],
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank as the classifier's state says (unchanged when it does not use the model)."""
    state = classifier.state
    mode = (getattr(state, "fields", None) or {}).get(STATE_KEY) if state else None
    if state is None or mode not in (RERANK, RERANK_DECIDE) or not len(texts):
        return probabilities, assigned
    weight = float(state.params.get(WEIGHT_KEY, DEFAULT_WEIGHT))
    model = theme_pair_model(classifier)
    return rerank(
        model, texts, codebook, probabilities, assigned, candidates, weight, mode == RERANK_DECIDE
    )
