"""Which themes and examples a prompt carries: the shortlist's cut and ranking model, and
the pool of reviewed answers shown as examples.

Both come from the project (``model_store``): its reviewed answers choose the cut and
give the examples, its trained embedded model ranks the codes. ``coder eval`` gives a gold
set's training part instead (:meth:`PromptChoice.fit`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from coder.llm.config import LLMSettings
from coder.llm.examples import DEFAULT_EXAMPLES, Example, ExamplePool
from coder.llm.shortlist import (
    BLEND_WEIGHTS,
    Cut,
    Shortlister,
    blend,
    choose_cut,
    ranked,
    recall_at,
)
from schemas import Codebook, Labels, Response


class PromptChoice:
    """The shortlist and example settings of one classifier, resolved against a project."""

    def __init__(
        self,
        settings: LLMSettings,
        model_store: Any = None,
        scorer: Any = None,
        example_pool: ExamplePool | None = None,
    ) -> None:
        # Only the shortlist and example settings are read: a classifier's copy with
        # another seed shares this object.
        self.settings = settings
        self.model_store = model_store
        self.scorer_override = scorer
        self.pool_override = example_pool
        self._shortlister: Shortlister | None = None
        self._cut_for: tuple[Codebook, Cut] | None = None
        self._key_for: tuple[Codebook, dict[str, Any] | None] | None = None
        self._zero: Any = None

    @property
    def scorer(self) -> Any:
        """The embedded classifier that ranks codes and embeds examples (built on first use:
        the project's trained model, else zero-shot)."""
        if self.scorer_override is None:
            from coder.embedded.classifier import LocalClassifier

            self.scorer_override = LocalClassifier(self.model_store)
        return self.scorer_override

    def zero_scorer(self) -> Any:
        """A zero-shot scorer sharing the trained scorer's encoder and caches, whose scores
        a trained ranking blends in; None when the scorer is not a trained embedded model."""
        scorer = self.scorer
        if getattr(scorer, "state", None) is None or not hasattr(scorer, "share_caches"):
            return None
        if self._zero is None:
            from coder.embedded.classifier import LocalClassifier

            self._zero = LocalClassifier(None, encoder=scorer.encoder, use_stored_model=False)
            scorer.share_caches(self._zero)
        return self._zero

    def scorer_name(self) -> str:
        """The ranking model's name and version, as recorded with each shortlist."""
        scorer = self.scorer
        return f"{getattr(scorer, 'model', type(scorer).__name__)}@" + str(
            getattr(scorer, "model_version", "")
        )

    def shortlister(self, codebook: Codebook) -> Shortlister | None:
        """The shortlister for ``codebook``, or None when shortlisting is off or every
        question's codes fit the cut (a small codebook goes whole)."""
        if not self.settings.shortlist:
            return None
        cut = self.shortlist_cut(codebook)
        if all(
            cut.size_for(len(codebook.themes_for(q))) >= len(codebook.themes_for(q))
            for q in [*codebook.question_ids, None]
        ):
            return None
        if self._shortlister is None or self._shortlister.cut is not cut:
            self._shortlister = Shortlister(
                self.scorer,
                cut,
                name=self.scorer_name(),
                zero_scorer=self.zero_scorer() if cut.blend else None,
            )
        return self._shortlister

    def shortlist_cut(self, codebook: Codebook) -> Cut:
        """The shortlist's cut: --shortlist-size, else chosen on the project's reviewed
        answers (those the trained model did not learn from), else the measured default."""
        if self._cut_for is not None and self._cut_for[0] is codebook:
            return self._cut_for[1]
        cut = Cut(size=None)
        if self.settings.shortlist_size is not None:
            cut = Cut(size=self.settings.shortlist_size, source="option")
        elif self.settings.shortlist and self.model_store is not None:
            cut = self._cut_from_reviews(codebook) or cut
        self._cut_for = (codebook, cut)
        return cut

    def _cut_from_reviews(self, codebook: Codebook) -> Cut | None:
        """The cut chosen on the project's reviewed answers the ranking model did not learn."""
        finals = self.model_store.final_labels()
        if not finals:
            return None
        state = getattr(self.scorer, "state", None)
        learned = set(getattr(state, "train_texts", None) or [])
        reviewed = [
            r
            for r in self.model_store.responses(ids=list(finals))
            if r.text not in learned and r.id in finals and finals[r.id].labels is not None
        ]
        gold = []
        for response in reviewed:
            labels = finals[response.id].labels
            gold.append(list(labels.themes) if labels.relevant else [])
        return self.calibrate_shortlist(reviewed, gold, codebook)

    def calibrate_shortlist(
        self, responses: Sequence[Response], gold: Sequence[Sequence[str]], codebook: Codebook
    ) -> Cut | None:
        """Choose the cut on ``responses`` whose codes are known (``gold``, e.g. reviewed or
        a gold set's training part) and use it from now on; None if too few."""
        ranker = Shortlister(self.scorer, Cut(size=None), zero_scorer=self.zero_scorer())
        ranker.prepare(responses, codebook)
        trained, zero = ranker.raw_scores(responses, codebook)
        # With examples, their labels join every shortlist: count them as kept (each
        # answer's examples exclude the answer itself).
        pool = self.example_pool()
        wanted = self.examples_wanted()
        given = (
            [[c for e in pool.nearest([r], wanted, codebook) for c in e.codes()] for r in responses]
            if pool is not None and wanted
            else None
        )
        # A trained ranking tries each blend weight; the shortest lists at the target win.
        best: tuple[float, Cut, list[Any]] | None = None
        for weight in BLEND_WEIGHTS if zero else (0.0,):
            rankings = [
                ranked(blend(scores, zero[n], weight) if zero else scores)
                for n, scores in enumerate(trained)
            ]
            cut = choose_cut(rankings, gold, self.settings.shortlist_recall, given)
            if cut is None:
                return None
            size = recall_at(rankings, gold, cut.size or 0, cut.threshold)[1]
            if best is None or size < best[0] - 1e-9:
                best = (size, dataclasses.replace(cut, blend=weight), rankings)
        assert best is not None
        _, cut, rankings = best
        self._cut_for = (codebook, cut)
        # The same scorers ranked them: keep their rankings.
        self._shortlister = Shortlister(
            ranker.scorer, cut, name=self.scorer_name(), zero_scorer=ranker.zero_scorer
        )
        self._shortlister._rankings = {
            Shortlister._key(r): ranking for r, ranking in zip(responses, rankings, strict=True)
        }
        self._shortlister._prepared = ranker._prepared
        return cut

    def fit(self, examples: Sequence[Any], codebook: Codebook) -> None:
        """Make labelled answers the pool of prompt examples and choose the cut on them."""
        kept = [e for e in examples if (e.text or "").strip()]
        pool = [
            Example(
                str(e.id or f"train-{number}"),
                e.question,
                e.text,
                Labels(
                    question=e.question,
                    themes=list(e.themes),
                    stance=e.stance,
                    relevant=e.relevant is not False,
                ),
            )
            for number, e in enumerate(kept)
        ]
        self.pool_override = ExamplePool(pool, self.scorer.embed)
        # The prompt choice (and so the cache key) depends on the pool and the cut.
        self._key_for = None
        if self.settings.shortlist and self.settings.shortlist_size is None:
            self._cut_for = None
            self.calibrate_shortlist(
                [Response(id=p.response_id, text=p.text, question=p.question) for p in pool],
                [p.codes() for p in pool],
                codebook,
            )

    def example_pool(self) -> ExamplePool | None:
        """Reviewed answers to show as examples (None when --examples 0 or none exist)."""
        if self.settings.examples == 0:
            return None
        if self.pool_override is None and self.model_store is not None:
            self.pool_override = ExamplePool.from_store(self.model_store, self.scorer.embed)
        return self.pool_override if self.pool_override else None

    def examples_wanted(self) -> int:
        """Examples per request: --examples, else DEFAULT_EXAMPLES when reviewed answers exist."""
        pool = self.example_pool()
        if pool is None:
            return 0
        return self.settings.examples if self.settings.examples is not None else DEFAULT_EXAMPLES

    def examples_for(self, responses: Sequence[Response], codebook: Codebook) -> list[Example]:
        """The reviewed answers most like ``responses`` (never one of them)."""
        pool = self.example_pool()
        wanted = self.examples_wanted()
        return pool.nearest(responses, wanted, codebook) if pool is not None and wanted else []

    def prepare_shortlist(self, responses: Sequence[Response], codebook: Codebook) -> None:
        """Let the ranking model learn its question prior from a sample of the answers."""
        shortlister = self.shortlister(codebook)
        if shortlister is not None:
            shortlister.prepare(responses, codebook)

    def rank(self, responses: Sequence[Response], codebook: Codebook) -> None:
        """Rank the codes of ``responses`` in one batch (a few ms per answer, not per call)."""
        shortlister = self.shortlister(codebook)
        if shortlister is not None:
            shortlister.rank(responses, codebook)

    def cache_key(self, codebook: Codebook) -> dict[str, Any] | None:
        """The settings of the prompt choice that join the cache key (None: all off)."""
        if self._key_for is not None and self._key_for[0] is codebook:
            return self._key_for[1]
        shortlister = self.shortlister(codebook)
        examples = self.examples_wanted()
        pool = self.example_pool()
        key: dict[str, Any] | None = {
            "shortlist": (
                {"cut": shortlister.cut.describe(), "ranker": shortlister.name}
                if shortlister
                else None
            ),
            "examples": {"k": examples, "pool": pool.fingerprint()} if examples and pool else None,
            "context_window": self.settings.context_window,
        }
        if key == {"shortlist": None, "examples": None, "context_window": None}:
            key = None
        self._key_for = (codebook, key)
        return key
