"""Training never makes things worse: choose, per field, the trained model or zero-shot.

A model fitted on a handful of reviewed answers can be worse than the zero-shot matcher it
replaces (five reviews, four of them "partly", teach a stance model that nobody disagrees).
So before a trained state is used, each field — themes, stance, relevance — is scored by
cross-validation on the reviewed answers themselves: in each fold a model is fitted on the
other folds and both it and zero-shot propose labels for the held-out answers. A field uses
the trained model only when it is at least as good out of fold; otherwise it keeps zero-shot
behaviour, and the state records which and why (``TrainedState.fields`` and ``gate``).

Options per field:
- themes: ``trained`` (kernel and pair models), ``hybrid`` (the kernel model for codes with
  enough reviewed examples, augmented zero-shot for the rest), ``stacked`` (one model over
  zero-shot match, nearest reviewed answers and kernel scores that trusts the reviewed
  answers in proportion to each code's examples: shrinkage toward zero-shot rather than a
  switch, hence safer than ``hybrid``), ``augmented`` (zero-shot matching with the
  reviewed answers added to each code's examples), ``zero-shot``;
- stance: ``trained``, ``trained+cues`` (the respondent's explicit opening — "Partly", "Yes,
  but", "Not really" — overrides the model), ``zero-shot``;
- relevance: ``trained``, ``zero-shot``.

Themes once the stacked model could be fitted in every fold: it is then the default, kept
unless zero-shot is clearly better out of fold, and only ``trained`` may replace it (when
clearly better). ``augmented`` and ``hybrid`` are still scored (in the report) but not
chosen: the stacked model holds what they add (the reviewed answers' vote, the kernel
margins) and shrinks toward zero-shot by itself, and a cross-validation on a few dozen
answers cannot rank them against it. On NHS dev (fixed 20% held out) the stacked model beat
both at every size (micro-F1 at 50 / 100 / 200 / 500 answers: stacked 0.563 / 0.582 /
0.614 / 0.650, hybrid 0.517 / 0.546 / 0.575 / 0.613, augmented 0.540 at 100) while the
gate's cross-validation ranked hybrid first at 50 answers (0.632 against 0.566, 2 standard
errors) and augmented at 100; on rapid_insight_dev (5-fold CV) stacked scores 0.728 against
0.667 / 0.590. A trained model also learns more from the whole set than each fold does
from four fifths of it, which cross-validation charges to the option that learns fastest.
When the folds were too small for a stacked model (fewer than 10 relevant answers each),
"stacked" is not a candidate: its out-of-fold figures were those of its fallback, while the
final fit, on more answers, would use a stacked model nobody scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from coder.embedded.training import LabelledExample
from schemas import Codebook, Proposal, Response

if TYPE_CHECKING:  # pragma: no cover
    from coder.embedded.classifier import LocalClassifier

#: Above this many reviewed answers the gate is skipped: the trained model is used (on
#: NHS with all 4,392 training answers it matches the stacked model, 0.740 against 0.737
#: micro-F1, and on ArgKP's unseen motions its pair model is needed), and cross-validating
#: a large fit would multiply training time. Up to here the gate decides: at 500 NHS
#: answers the stacked model beats the trained one (held-out micro-F1 0.647 against 0.624).
GATE_MAX_EXAMPLES = 1000
#: How many standard errors of the paired per-answer differences a riskier option's mean
#: gain must exceed (0.5: a one-sided chance of about 70% that the gain is real).
GATE_Z = 0.5
#: Folds of the gate's cross-validation (fewer when there are fewer answers).
GATE_FOLDS = 5
#: Below this many reviewed answers themes stay zero-shot: folds of two to four answers
#: cannot rank theme models (on rapid_insight_dev, 5 seeds, 10 reviewed answers: the gate's
#: pick scored 0.552 micro-F1 on average against zero-shot's 0.616, and 0.306 in one seed;
#: from 20 answers on, the pick matches or beats zero-shot on average). Stance and
#: relevance are still gated: stance gains most from the first few reviewed answers.
GATE_MIN_THEME_EXAMPLES = 20

# Options in order of risk, zero-shot (needs no labels) first: each later option must beat
# the best earlier one by the noise margin to be chosen.
THEME_OPTIONS = ("zero-shot", "augmented", "stacked", "hybrid", "trained")
#: Theme options chosen among once the stacked model was fitted in every fold (see above).
STACKED_THEME_OPTIONS = ("stacked", "trained")
STANCE_OPTIONS = ("zero-shot", "trained+cues", "trained")
RELEVANCE_OPTIONS = ("zero-shot", "trained")


def _responses(examples: Sequence[LabelledExample]) -> list[Response]:
    return [
        Response(id=example.id or f"x{index}", text=example.text, question=example.question)
        for index, example in enumerate(examples)
    ]


def _theme_sets(
    examples: Sequence[LabelledExample], proposals: Sequence[Proposal | None], codebook: Codebook
) -> list[tuple[set[str], set[str]]]:
    """Per relevant example, (reviewed, proposed) theme sets as scored: limited to the codes
    that apply to its question, parents added by the codebook's rule, uncertain codes out."""
    pairs = []
    for example, proposal in zip(examples, proposals, strict=True):
        if example.relevant is False:
            continue
        applies = {t.id for t in codebook.themes_for(example.question)}
        uncertain = set(example.uncertain_themes)
        gold = set(codebook.with_parents(list(example.themes))) & applies
        guess = set(codebook.with_parents([t.code for t in proposal.themes])) if proposal else set()
        pairs.append((gold - uncertain, (guess & applies) - uncertain))
    return pairs


def theme_f1(
    examples: Sequence[LabelledExample], proposals: Sequence[Proposal | None], codebook: Codebook
) -> float | None:
    """Micro-F1 of proposed themes on the examples reviewers called relevant (None: no data)."""
    tp = fp = fn = 0
    for gold, guess in _theme_sets(examples, proposals, codebook):
        tp += len(gold & guess)
        fp += len(guess - gold)
        fn += len(gold - guess)
    if tp + fp + fn == 0:
        return None
    return 2 * tp / (2 * tp + fp + fn)


def stance_item_correct(
    examples: Sequence[LabelledExample], proposals: Sequence[Proposal | None], codebook: Codebook
) -> np.ndarray:
    """Per relevant example with a stance under a question that has one: 1 if right."""
    return np.array(
        [
            float(example.stance == (proposal.stance if proposal else None))
            for example, proposal in zip(examples, proposals, strict=True)
            if example.relevant is not False
            and example.stance is not None
            and codebook.has_stance(example.question)
        ]
    )


def stance_accuracy(
    examples: Sequence[LabelledExample], proposals: Sequence[Proposal | None], codebook: Codebook
) -> float | None:
    """Stance accuracy on relevant examples that carry a stance (None: no data)."""
    correct = stance_item_correct(examples, proposals, codebook)
    return float(correct.mean()) if len(correct) else None


def relevance_f1(
    examples: Sequence[LabelledExample], proposals: Sequence[Proposal | None]
) -> float | None:
    """Macro-F1 of relevant / not relevant (None: reviewers used only one class)."""
    gold = [example.relevant is not False for example in examples]
    if len(set(gold)) < 2:
        return None
    guess = [bool(proposal.relevant) if proposal else True for proposal in proposals]
    scores = []
    for positive in (True, False):
        tp = sum(g == positive and p == positive for g, p in zip(gold, guess, strict=True))
        fp = sum(g != positive and p == positive for g, p in zip(gold, guess, strict=True))
        fn = sum(g == positive and p != positive for g, p in zip(gold, guess, strict=True))
        scores.append(2 * tp / max(1, 2 * tp + fp + fn))
    return float(np.mean(scores))


def theme_item_f1(
    examples: Sequence[LabelledExample], proposals: Sequence[Proposal | None], codebook: Codebook
) -> np.ndarray:
    """Per relevant example, the F1 of its proposed theme set (1 when both are empty)."""
    return np.array(
        [
            1.0 if not (gold or guess) else 2 * len(gold & guess) / (len(gold) + len(guess))
            for gold, guess in _theme_sets(examples, proposals, codebook)
        ]
    )


def _clearly_better(candidate: np.ndarray, other: np.ndarray) -> bool:
    """True when ``candidate`` beats ``other`` on the same items by more than GATE_Z
    standard errors of the paired per-item differences."""
    if len(candidate) < 2 or len(candidate) != len(other):
        return False
    difference = candidate - other
    gain = float(difference.mean())
    noise = float(difference.std(ddof=1)) / float(np.sqrt(len(difference)))
    return gain > 0 and gain > GATE_Z * noise


def _folds(count: int, k: int, seed: int = 0) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(count)
    return [order[i::k] for i in range(k)]


def choose_fields(
    make: Callable[[], LocalClassifier],
    examples: Sequence[LabelledExample],
    codebook: Codebook,
    fit: Callable[[LocalClassifier, Sequence[LabelledExample]], Any],
) -> tuple[dict[str, str], dict[str, Any]]:
    """Per field, the option to use and the cross-validated scores behind the choice.

    ``make`` returns a fresh zero-shot classifier sharing the caller's encoder; ``fit``
    trains one without gating (so the gate does not recurse).
    """
    count = len(examples)
    report: dict[str, Any] = {"n_examples": count}
    if count > GATE_MAX_EXAMPLES:
        report["skipped"] = f"more than {GATE_MAX_EXAMPLES} reviewed answers"
        return {"themes": "trained", "stance": "trained", "relevance": "trained"}, report
    k = min(GATE_FOLDS, count)
    if k < 2:
        report["skipped"] = "fewer than 2 reviewed answers"
        return {"themes": "zero-shot", "stance": "zero-shot", "relevance": "zero-shot"}, report
    options: dict[str, tuple[str, ...]] = {
        "themes": THEME_OPTIONS,
        "stance": STANCE_OPTIONS,
        "relevance": RELEVANCE_OPTIONS,
    }
    out_of_fold, stacked_everywhere = _out_of_fold(make, examples, codebook, fit, k, options)
    report["stacked_in_every_fold"] = stacked_everywhere
    scorers, item_scores = _scorers(examples, codebook)
    chosen: dict[str, str] = {}
    for field, choices in options.items():
        scores = {option: scorers[field](out_of_fold[(field, option)]) for option in choices}
        report[field] = {option: None if v is None else round(v, 3) for option, v in scores.items()}
        per_item = {option: item_scores[field](out_of_fold[(field, option)]) for option in choices}
        if field == "themes" and count < GATE_MIN_THEME_EXAMPLES:
            chosen[field] = "zero-shot"
            report["themes_note"] = f"fewer than {GATE_MIN_THEME_EXAMPLES} reviewed answers"
        elif field == "themes" and stacked_everywhere:
            chosen[field] = choose_themes_with_stack(scores, per_item)
        elif field == "themes":
            # Folds too small for a stacked model scored its fallback (hybrid) under its
            # name; the final fit would use a real one, never scored: not a candidate.
            without = tuple(option for option in choices if option != "stacked")
            chosen[field] = _safest_clear_winner(without, scores, per_item)
        else:
            chosen[field] = _safest_clear_winner(choices, scores, per_item)
    return chosen, report


def choose_themes_with_stack(
    scores: dict[str, float | None], per_item: dict[str, np.ndarray]
) -> str:
    """The themes option when every fold had a stacked model: ``stacked`` unless zero-shot
    clearly beats it (then zero-shot), replaced by ``trained`` only when that clearly beats
    the default (see the module docstring)."""
    if scores.get("stacked") is None:
        return _safest_clear_winner(THEME_OPTIONS, scores, per_item)
    default = "stacked"
    if scores["zero-shot"] is not None and _beats("zero-shot", "stacked", scores, per_item):
        default = "zero-shot"
    return _safest_clear_winner(
        (default, *[o for o in STACKED_THEME_OPTIONS if o != "stacked"]), scores, per_item, default
    )


def _beats(
    option: str, other: str, scores: dict[str, float | None], per_item: dict[str, np.ndarray]
) -> bool:
    """True when ``option`` clearly beats ``other`` out of fold (see :func:`_clearly_better`)."""
    return _clearly_better(per_item[option], per_item[other]) and (scores[option] or 0.0) > (
        scores[other] or 0.0
    )


def _out_of_fold(
    make: Callable[[], LocalClassifier],
    examples: Sequence[LabelledExample],
    codebook: Codebook,
    fit: Callable[[LocalClassifier, Sequence[LabelledExample]], Any],
    k: int,
    options: dict[str, tuple[str, ...]],
) -> tuple[dict[tuple[str, str], list[Proposal | None]], bool]:
    """Per (field, option), each example's proposal from a model fitted without its fold;
    and whether every fold's model had a stacked themes model (else "stacked" fell back)."""
    count = len(examples)
    out_of_fold: dict[tuple[str, str], list[Proposal | None]] = {
        (field, option): [None] * count for field, choices in options.items() for option in choices
    }
    responses = _responses(examples)
    zero = make()
    stacked_everywhere = True
    for held in _folds(count, k):
        held_set = set(held.tolist())
        train = [examples[i] for i in range(count) if i not in held_set]
        test = [responses[i] for i in held]
        zero_proposals = [r.proposal for r in zero.propose(test, codebook)]
        trained = make()
        try:
            fit(trained, train)
        except Exception:  # too little to fit anything: the trained model is zero-shot
            trained.state = None
        stacked_everywhere &= trained.state is not None and trained.state.stack_model is not None
        for field, choices in options.items():
            for option in choices:
                if option == "zero-shot":
                    proposals = zero_proposals
                elif trained.state is None:
                    proposals = zero_proposals
                else:
                    trained.state.fields = {
                        "themes": "trained",
                        "stance": "trained",
                        "relevance": "trained",
                        field: option,
                    }
                    proposals = [r.proposal for r in trained.propose(test, codebook)]
                for position, row in enumerate(held):
                    out_of_fold[(field, option)][row] = proposals[position]
    return out_of_fold, stacked_everywhere


def _scorers(
    examples: Sequence[LabelledExample], codebook: Codebook
) -> tuple[
    dict[str, Callable[[Sequence[Proposal | None]], float | None]],
    dict[str, Callable[[Sequence[Proposal | None]], np.ndarray]],
]:
    """Per field, the overall score of a set of proposals and the per-answer scores."""
    scorers: dict[str, Callable[[Sequence[Proposal | None]], float | None]] = {
        "themes": lambda p: theme_f1(examples, p, codebook),
        "stance": lambda p: stance_accuracy(examples, p, codebook),
        "relevance": lambda p: relevance_f1(examples, p),
    }
    item_scores: dict[str, Callable[[Sequence[Proposal | None]], np.ndarray]] = {
        "themes": lambda p: theme_item_f1(examples, p, codebook),
        "stance": lambda p: stance_item_correct(examples, p, codebook),
        "relevance": lambda p: np.array(
            [(e.relevant is not False) == (bool(x.relevant) if x else True) for e, x in zip(examples, p, strict=True)],
            dtype=float,
        ),
    }
    return scorers, item_scores


def _safest_clear_winner(
    choices: Sequence[str],
    scores: dict[str, float | None],
    per_item: dict[str, np.ndarray],
    default: str = "zero-shot",
) -> str:
    """The riskiest option that clearly beats every safer one (``choices`` go from safe to
    risky); ``default`` (zero-shot unless told) when none does."""
    # A riskier option must beat every safer one out of fold, on the same answers, by
    # more than the noise of that comparison: the mean per-answer gain must exceed
    # GATE_Z standard errors of the paired differences (answers both get right or wrong add no
    # noise). A tie keeps the safer option; zero-shot cannot have overfitted.
    best = default
    safer = [default] if scores[default] is not None else []
    for option in choices:
        if option == default or scores[option] is None:
            continue
        if all(
            _clearly_better(per_item[option], per_item[other])
            and scores[option] > (scores[other] or 0.0)  # type: ignore[operator]
            for other in safer
        ):
            best = option
        safer.append(option)
    # Nothing to judge by (e.g. every reviewed answer relevant): the default, the safe side.
    return best
