"""Examples from reviewers: the most similar reviewed answers, shown to the LLM with their
final labels (dynamic few-shot).

The pool is the project's reviewed answers (``Store.final_labels``), embedded once with the
offline embedded model; for each response the ``k`` nearest by cosine are chosen. The
response itself is never its own example (the same id is excluded, and so is the same
text to the same question): on gold data that would hand the model the answer.
Examples go to the end of the system prompt, after the static instructions, so a
provider's prompt cache still covers the static part.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas import Codebook, Labels, Response

#: examples per response when reviewed answers exist and --examples is not given
DEFAULT_EXAMPLES = 3

Embed = Callable[[Sequence[str]], Any]


@dataclass(frozen=True)
class Example:
    """A reviewed answer and the labels reviewers gave it."""

    response_id: str
    question: str | None
    text: str
    labels: Labels

    def codes(self) -> list[str]:
        return list(self.labels.themes) if self.labels.relevant else []


@dataclass
class ExamplePool:
    """Reviewed answers to pick examples from; ``embed`` maps texts to unit vectors."""

    examples: list[Example]
    embed: Embed
    _vectors: Any = field(default=None, repr=False)
    _fit_cache: dict[Any, Any] = field(default_factory=dict, repr=False)
    _index: dict[Any, list[int]] | None = field(default=None, repr=False)

    @classmethod
    def from_store(cls, store: Any, embed: Embed) -> ExamplePool:
        """The project's reviewed answers with their final labels (after undos)."""
        finals = store.final_labels()
        if not finals:
            return cls([], embed)
        by_id = {r.id: r for r in store.responses(ids=list(finals))}
        examples = [
            Example(rid, by_id[rid].question, by_id[rid].text or "", decision.labels)
            for rid, decision in finals.items()
            if rid in by_id and decision.labels is not None and (by_id[rid].text or "").strip()
        ]
        return cls(examples, embed)

    def __len__(self) -> int:
        return len(self.examples)

    def fingerprint(self) -> str:
        """A hash of the pool (ids and labels): part of the cache key, so a proposal made
        with other examples is not served from the cache."""
        digest = hashlib.sha256()
        for example in self.examples:
            digest.update(
                json.dumps(
                    [example.response_id, example.labels.model_dump(mode="json")], sort_keys=True
                ).encode("utf-8")
            )
        return digest.hexdigest()

    def _fitting(self, questions: set[str | None], codebook: Codebook | None) -> Any:
        """Which examples' labels all apply to ``questions``, and which answer one of them
        (computed once per set of questions)."""
        import numpy as np

        key = (tuple(sorted(questions, key=str)), id(codebook))
        hit = self._fit_cache.get(key)
        if hit is None:
            fits = np.array(
                [codebook is None or _labels_fit(e, codebook, questions) for e in self.examples],
                dtype=bool,
            )
            same = np.array([e.question in questions for e in self.examples], dtype=bool)
            hit = (fits, same)
            self._fit_cache[key] = hit
        return hit

    def _matrix(self) -> Any:
        if self._vectors is None:
            self._vectors = self.embed([example.text for example in self.examples])
        return self._vectors

    def nearest(
        self,
        responses: Sequence[Response],
        k: int,
        codebook: Codebook | None = None,
    ) -> list[Example]:
        """The ``k`` reviewed answers most similar to ``responses`` (best match to any of
        them), never one of the responses themselves, to the same question when possible."""
        if k <= 0 or not self.examples:
            return []
        import numpy as np

        questions = {r.question for r in responses}
        allowed, same_question = self._fitting(questions, codebook)
        allowed = allowed.copy()
        positions = self._positions()
        for response in responses:
            for key in (response.id, (response.question, response.text or "")):
                for position in positions.get(key, ()):
                    allowed[position] = False
        if not allowed.any():
            return []
        query = np.asarray(self.embed([r.text or "" for r in responses]))
        similarity = (np.asarray(self._matrix()) @ query.T).max(axis=1)
        # Same-question answers first: their labels are the ones the response can take.
        order = np.lexsort((-similarity, ~same_question))
        chosen: list[Example] = []
        for position in order:
            if allowed[position]:
                chosen.append(self.examples[position])
                if len(chosen) == k:
                    break
        return chosen

    def _positions(self) -> dict[Any, list[int]]:
        """Example positions by response id and by (question, text)."""
        if self._index is None:
            index: dict[Any, list[int]] = {}
            for position, example in enumerate(self.examples):
                index.setdefault(example.response_id, []).append(position)
                index.setdefault((example.question, example.text), []).append(position)
            self._index = index
        return self._index


def _labels_fit(example: Example, codebook: Codebook, questions: set[str | None]) -> bool:
    # An example whose codes do not apply to the response's question would teach codes
    # it cannot use.
    for code in example.codes():
        try:
            theme = codebook.theme(code)
        except KeyError:
            return False
        if not all(theme.applies_to(q) for q in questions):
            return False
    return True


def render_examples(examples: Sequence[Example], texts: Sequence[str]) -> list[dict[str, Any]]:
    """Examples as the system template shows them; ``texts`` are the texts to send
    (redacted for a remote endpoint, as the response itself is)."""
    return [
        {
            "text": text,
            "relevant": example.labels.relevant,
            "themes": example.codes(),
            "stance": example.labels.stance,
        }
        for example, text in zip(examples, texts, strict=True)
    ]
