"""The codebook shortlist: only the themes a response may carry go into its LLM prompt.

Sending every call the whole codebook costs tokens (NHS: about 15,000 a call) and does not
fit a small local model's context at all. Before a call, the embedded model
(:class:`coder.embedded.classifier.LocalClassifier`, offline) ranks the themes that apply
to the response's question; the prompt carries the top ``k`` of them plus *always-on*
themes: the parent of every shortlisted sub-theme, and the codes reviewers gave the most
similar reviewed answers (when examples are used, see :mod:`coder.llm.examples`). The LLM
can still say that a theme it was not shown is needed (``other_theme_needed``).

The cut is chosen for recall, on data, never as a constant fitted to one gold set:

* ``--shortlist-size K`` fixes it;
* else the project's reviewed answers choose it: the top ``k`` codes plus any code scoring
  at least ``threshold``, the pair with the fewest codes on average whose shortlists hold
  ``target_recall`` (0.98) of the codes reviewers gave, plus two standard errors (so a
  clear answer gets a short list and an ambiguous one a longer list). Answers a trained model learned from are
  left out (it would rank them too well), and at least ``MIN_CALIBRATION_ANSWERS`` themed
  answers are needed;
* else a share of each question's codes, :data:`DEFAULT_FRACTION`, and never fewer than
  :data:`DEFAULT_MIN_SIZE`, measured zero-shot on every open gold dev set (NHS,
  rapid_insight_dev, ArgKP; ``python benchmarks/bench_tokens.py --shortlist`` writes the
  figures to benchmarks/results/shortlist.json).

A question with no more codes than the cut keeps them all: a small codebook is sent whole.

**Blended ranking.** A trained model ranks the codes it learned well, but a code with few
reviewed examples gets a low probability on every answer, so a cut high enough to catch it
is long for all. Once trained, the ranking adds the zero-shot match of each code's text
(standardised over the answer's codes) to the trained log-odds, with a weight chosen with
the cut on the reviewed answers (:data:`BLEND_WEIGHTS`, 0 = trained alone): on NHS (half
the answers trained, the cut chosen on a fifth, measured on the rest) the blend keeps 98%
of the gold codes with about 11 codes instead of 13.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from schemas import Codebook, Response

DEFAULT_TARGET_RECALL = 0.98
#: The smallest share of a response's applicable codes whose zero-shot shortlist (with the
#: floor DEFAULT_MIN_SIZE) holds 98% of the gold codes, the largest over the open gold dev
#: sets: NHS 0.55 (recall 0.984 at 0.6, 29 of 48 codes); on rapid_insight_dev (0.984) and
#: ArgKP (1.0) the floor alone suffices. See benchmarks/results/shortlist.json.
DEFAULT_FRACTION = 0.6
#: A shortlist never has fewer codes than this (unless the question has fewer): a model
#: choosing among three codes has no room to disagree with the ranking.
MIN_SIZE = 6
#: The default cut's floor. Zero-shot, a question's top dozen is where the ranking is
#: unreliable: ArgKP's gold key point ranks 9th-10th among a motion's ~9-13 often enough that
#: any share below the whole misses 2% (0.91 recall at 6 codes), so a question with at most
#: this many codes is sent whole until reviewed answers measure a tighter cut.
DEFAULT_MIN_SIZE = 12
#: Themed reviewed answers needed before they choose the cut.
MIN_CALIBRATION_ANSWERS = 30
#: Weights of the zero-shot score in a trained ranking, tried when reviewed answers choose
#: the cut (the one giving the shortest lists at the target recall wins; 0 = trained only).
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 1.0)


class Scorer(Protocol):
    """What ranks codes: the embedded classifier's public scoring API."""

    def prepare(self, responses: Sequence[Response], codebook: Codebook) -> Any: ...

    def code_scores(
        self, responses: Sequence[Response], codebook: Codebook
    ) -> list[dict[str, float]]: ...


@dataclass(frozen=True)
class Cut:
    """How many of a response's ranked codes go into its prompt."""

    #: a fixed number of codes, or None to use ``fraction``
    size: int | None
    #: codes scoring at least this join the top ``size`` (chosen on reviewed answers)
    threshold: float | None = None
    #: a share of the question's applicable codes (used when ``size`` is None)
    fraction: float = DEFAULT_FRACTION
    #: where the cut came from: "option", "reviewed" or "default"
    source: str = "default"
    #: recall of reviewers' codes at this cut, when reviewed answers chose it
    recall: float | None = None
    #: themed reviewed answers that chose it
    answers: int = 0
    #: weight of the zero-shot score blended into a trained ranking (:func:`blend`)
    blend: float = 0.0

    def size_for(self, applicable: int) -> int:
        """The number of codes to send for a question with ``applicable`` codes."""
        wanted = self.size if self.size is not None else math.ceil(self.fraction * applicable)
        floor = {"option": 1, "default": DEFAULT_MIN_SIZE}.get(self.source, MIN_SIZE)
        return min(applicable, max(wanted, floor))

    def describe(self) -> dict[str, Any]:
        """The cut as stored with each proposal (part of the cache key)."""
        return {
            "size": self.size,
            "threshold": self.threshold,
            "fraction": None if self.size is not None else self.fraction,
            "source": self.source,
            "recall": self.recall,
            "answers": self.answers,
            "blend": self.blend,
        }


Ranking = list[tuple[str, float]]


def blend(trained: dict[str, float], zero: dict[str, float], weight: float) -> dict[str, float]:
    """A trained ranking's scores with the zero-shot ones mixed in: the trained log-odds
    plus ``weight`` times the zero-shot score standardised over the answer's codes (the
    two are on different scales; the standardised match says which codes' *text* fits this
    answer best, which a code with few reviewed examples needs)."""
    if not weight or not zero:
        return trained
    values = [zero.get(code, 0.0) for code in trained]
    mean = sum(values) / len(values)
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) or 1.0
    return {
        code: _logit(p) + weight * (zero.get(code, mean) - mean) / spread
        for code, p in trained.items()
    }


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def ranked(scores: dict[str, float]) -> Ranking:
    """``scores`` as (code, score) pairs, best first."""
    return sorted(scores.items(), key=lambda pair: -pair[1])


def cut_ranking(ranking: Ranking, size: int, threshold: float | None) -> list[str]:
    """The top ``size`` codes of ``ranking`` (best first) plus any scoring ``threshold``."""
    return [
        code
        for position, (code, score) in enumerate(ranking)
        if position < size or (threshold is not None and score >= threshold)
    ]


def recall_at(
    rankings: Sequence[Ranking],
    gold: Sequence[Sequence[str]],
    size: int,
    threshold: float | None = None,
) -> tuple[float, float]:
    """(share of gold codes kept, mean codes kept) when each ranking is cut at
    ``size``/``threshold``."""
    found = total = kept = 0
    for ranking, codes in zip(rankings, gold, strict=True):
        chosen = set(cut_ranking(ranking, size, threshold))
        kept += len(chosen)
        total += len(codes)
        found += sum(code in chosen for code in codes)
    return (found / total if total else 1.0), (kept / len(rankings) if rankings else 0.0)


def choose_cut(
    rankings: Sequence[Ranking],
    gold: Sequence[Sequence[str]],
    target_recall: float = DEFAULT_TARGET_RECALL,
    given: Sequence[Sequence[str]] | None = None,
) -> Cut | None:
    """The cut with the fewest codes on average whose shortlists hold ``target_recall`` of
    the gold codes: for each ``size``, the highest score threshold that reaches it.

    ``rankings`` are each answer's (code, score) pairs, best first; ``gold`` the codes
    reviewers gave it; ``given`` codes each shortlist will hold anyway (its examples'
    labels). None when fewer than ``MIN_CALIBRATION_ANSWERS`` answers have codes.
    """
    import numpy as np

    extras = given if given is not None else [()] * len(rankings)
    pairs = []
    already = 0
    total = 0
    for ranking, codes, kept in zip(rankings, gold, extras, strict=True):
        if not codes:
            continue
        total += len(codes)
        held = set(kept)
        already += sum(code in held for code in codes)
        pairs.append((ranking, [code for code in codes if code not in held]))
    if len(pairs) < MIN_CALIBRATION_ANSWERS:
        return None
    # The cut must hold on answers not reviewed yet, not only on these: aim two standard
    # errors of a proportion above the target (with 1,000 reviewed codes, 0.98 -> 0.989).
    aim = min(1.0, target_recall + 2 * math.sqrt(target_recall * (1 - target_recall) / total))
    needed = math.ceil(aim * total - 1e-9) - already
    longest = max(len(r) for r, _ in pairs)
    best: tuple[float, int, float | None] | None = None
    # Sizes below MIN_SIZE are never used (Cut.size_for), so they are not tried.
    for size in range(min(MIN_SIZE, longest), longest + 1):
        found = 0
        missed_scores: list[float] = []
        tail_scores: list[float] = []
        for ranking, codes in pairs:
            wanted = set(codes)
            for position, (code, score) in enumerate(ranking):
                if position < size:
                    found += code in wanted
                else:
                    tail_scores.append(score)
                    if code in wanted:
                        missed_scores.append(score)
        threshold: float | None = None
        if found < needed:
            short = needed - found
            if short > len(missed_scores):
                continue
            threshold = sorted(missed_scores, reverse=True)[short - 1]
        extra = (
            float((np.asarray(tail_scores) >= threshold).sum()) if threshold is not None else 0.0
        )
        mean_size = min(size, longest) + extra / len(pairs)
        if best is None or mean_size < best[0] - 1e-9:
            best = (mean_size, size, threshold)
        if threshold is None:
            break  # larger sizes only add codes
    assert best is not None  # size == longest keeps every code
    _, size, threshold = best
    found_here = 0
    for ranking, codes in pairs:
        chosen = set(cut_ranking(ranking, size, threshold))
        found_here += sum(code in chosen for code in codes)
    recall = (found_here + already) / total
    return Cut(
        size=size,
        threshold=threshold,
        source="reviewed",
        recall=round(recall, 4),
        answers=len(pairs),
    )


class Shortlister:
    """Ranks a codebook's themes for each response and cuts the ranking for its prompt."""

    def __init__(
        self, scorer: Scorer, cut: Cut, *, name: str = "", zero_scorer: Scorer | None = None
    ) -> None:
        self.scorer = scorer
        #: the zero-shot scorer whose scores a trained ranking blends in (``cut.blend``)
        self.zero_scorer = zero_scorer
        self.cut = cut
        #: the ranking model's name and version, for the cache key and the proposal
        self.name = name
        self._rankings: dict[tuple[str | None, str], Ranking] = {}
        self._prepared: set[str] = set()

    @staticmethod
    def _key(response: Response) -> tuple[str | None, str]:
        # Keyed by question and text: the same answer gets the same shortlist (the cache
        # key relies on it), whatever its id.
        return (response.question, response.text or "")

    def prepare(self, responses: Sequence[Response], codebook: Codebook) -> None:
        """Let the scorer learn its question prior from the project's answers (once)."""
        digest = codebook.content_hash()
        if digest not in self._prepared and responses:
            self.scorer.prepare(responses, codebook)
            if self.zero_scorer is not None:
                self.zero_scorer.prepare(responses, codebook)
            self._prepared.add(digest)

    def rank(self, responses: Sequence[Response], codebook: Codebook) -> None:
        """Rank the codes of every response not ranked yet (one batch for the scorer)."""
        todo: dict[tuple[str | None, str], Response] = {}
        for response in responses:
            key = self._key(response)
            if (
                key not in self._rankings
                and key not in todo
                and self.needs_ranking(response, codebook)
            ):
                todo[key] = response
        if not todo:
            return
        self.prepare(list(todo.values()), codebook)
        batch = list(todo.values())
        trained, zero = self.raw_scores(batch, codebook, self.cut.blend)
        for number, (response, scores) in enumerate(zip(batch, trained, strict=True)):
            mixed = blend(scores, zero[number], self.cut.blend) if zero else scores
            self._rankings[self._key(response)] = ranked(mixed)

    def raw_scores(
        self, responses: Sequence[Response], codebook: Codebook, weight: float = 1.0
    ) -> tuple[list[dict[str, float]], list[dict[str, float]] | None]:
        """The scorer's code scores for ``responses`` and, when a blend may use them (a
        zero-shot scorer and a weight), the zero-shot scorer's."""
        trained = self.scorer.code_scores(responses, codebook)
        if not weight or self.zero_scorer is None:
            return trained, None
        return trained, self.zero_scorer.code_scores(responses, codebook)

    def ranking(self, response: Response, codebook: Codebook) -> Ranking:
        """The codes that apply to ``response`` with their scores, best first."""
        key = self._key(response)
        if key not in self._rankings:
            self.rank([response], codebook)
        return self._rankings[key]

    def needs_ranking(self, response: Response, codebook: Codebook) -> bool:
        """False when the cut keeps every code of the question (nothing to rank)."""
        applicable = len(codebook.themes_for(response.question))
        return self.cut.size_for(applicable) < applicable

    def shortlist(
        self,
        response: Response,
        codebook: Codebook,
        *,
        size: int | None = None,
        extra: Sequence[str] = (),
    ) -> list[str]:
        """The codes for ``response``'s prompt, in codebook order.

        The top ``size`` (default: the cut's) of its ranking, plus ``extra`` codes that
        apply (e.g. the labels of similar reviewed answers) and the parents of every
        sub-theme chosen.
        """
        applicable = codebook.themes_for(response.question)
        wanted = self.cut.size_for(len(applicable)) if size is None else size
        if wanted >= len(applicable):
            return [theme.id for theme in applicable]
        # A smaller ``size`` (fitting a context window) also drops the threshold's extras.
        threshold = self.cut.threshold if size is None else None
        chosen = set(cut_ranking(self.ranking(response, codebook), max(0, wanted), threshold))
        applicable_ids = {theme.id for theme in applicable}
        chosen.update(code for code in extra if code in applicable_ids)
        return with_parents(codebook, chosen, applicable_ids)


def with_parents(codebook: Codebook, codes: set[str], applicable: set[str]) -> list[str]:
    """``codes`` plus the parents of their sub-themes, in codebook order."""
    parent_of = {theme.id: theme.parent for theme in codebook.themes if theme.parent}
    chosen = set(codes)
    for code in list(chosen):
        parent = parent_of.get(code)
        while parent and parent not in chosen and parent in applicable:
            chosen.add(parent)
            parent = parent_of.get(parent)
    return [theme.id for theme in codebook.themes if theme.id in chosen]
