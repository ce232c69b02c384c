"""Stance and relevance: multinomial logistic regression on words, question-tagged words
and embeddings, with its regularisation chosen by cross-validation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold

from coder.embedded.model_tools import (
    from_learned_parts,
    learned_parts,
    question_tagged,
    question_tfidf,
    slim,
)

# --- stance and relevance ---------------------------------------------------------------------


@dataclass
class LabelModel:
    """Multinomial logistic regression on TF-IDF, question-tagged words and embeddings."""

    classes: list[str] = field(default_factory=list)
    words: TfidfVectorizer | None = None
    tagged: TfidfVectorizer | None = None
    model: LogisticRegression | None = None
    constant: str | None = None
    extra_width: int = 0

    def to_parts(self) -> dict[str, Any]:
        """The learned state by field (see :mod:`coder.embedded.state_io`)."""
        return learned_parts(self)

    @classmethod
    def from_parts(cls, parts: dict[str, Any]) -> LabelModel:
        """The model :meth:`to_parts` described."""
        return from_learned_parts(cls, parts)

    def _features(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray,
        questions: Sequence[str | None],
        extra: np.ndarray | None,
    ) -> sp.csr_matrix:
        assert self.words is not None and self.tagged is not None
        blocks = [
            self.words.transform(texts),
            self.tagged.transform(question_tagged(texts, questions)),
            sp.csr_matrix(embeddings.astype(np.float64)),
        ]
        if self.extra_width:
            width = self.extra_width
            values = extra if extra is not None else np.zeros((len(texts), width))
            blocks.append(sp.csr_matrix(values))
        return sp.hstack(blocks).tocsr()

    def fit(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray,
        questions: Sequence[str | None],
        labels: Sequence[str],
        extra: np.ndarray | None = None,
        C: float = 2.0,
        balanced: bool = True,
    ) -> LabelModel:
        distinct = sorted(set(labels))
        self.classes = distinct
        if len(distinct) < 2:
            self.constant = distinct[0] if distinct else None
            return self
        self._fit_vocabulary(texts, questions, extra)
        features = self._features(texts, embeddings, questions, extra)
        self._fit_classifier(features, labels, C, balanced)
        slim(self.words)
        slim(self.tagged)
        return self

    def _fit_vocabulary(
        self, texts: Sequence[str], questions: Sequence[str | None], extra: np.ndarray | None
    ) -> None:
        self.words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        self.tagged = question_tfidf()
        try:
            self.words.fit(texts)
        except ValueError:
            self.words = TfidfVectorizer(min_df=1)
            self.words.fit([text or "_" for text in texts])
        try:
            self.tagged.fit(question_tagged(texts, questions))
        except ValueError:
            self.tagged = TfidfVectorizer(analyzer=str.split, min_df=1, lowercase=False)
            self.tagged.fit(question_tagged(texts, questions))
        self.extra_width = 0 if extra is None else extra.shape[1]

    def _fit_classifier(
        self, features: sp.csr_matrix, labels: Sequence[str], C: float, balanced: bool
    ) -> None:
        self.model = LogisticRegression(
            C=C, max_iter=3000, class_weight="balanced" if balanced else None
        )
        self.model.fit(features, list(labels))
        self.classes = [str(label) for label in self.model.classes_]

    def probabilities(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray,
        questions: Sequence[str | None],
        extra: np.ndarray | None = None,
    ) -> np.ndarray:
        """(n, classes) probabilities, columns in ``self.classes`` order."""
        if self.model is None:
            return np.ones((len(texts), max(1, len(self.classes))))
        return self.model.predict_proba(self._features(texts, embeddings, questions, extra))


def choose_regularisation(
    texts: Sequence[str],
    embeddings: np.ndarray,
    questions: Sequence[str | None],
    labels: Sequence[str],
    extra: np.ndarray | None,
    choices: Sequence[float],
    folds: int = 3,
) -> float:
    """The C in ``choices`` whose (balanced) :class:`LabelModel` is most accurate held out.

    With answers to three or more questions the folds hold out whole questions, because a
    model is most often asked about questions (e.g. motions) it has not seen; otherwise the
    folds are random. Ties go to the first choice; tiny or one-class data get it too. Each
    fold's vocabulary and features are built once and shared by every choice.
    """
    distinct_questions = len(set(questions))
    if len(choices) == 1 or len(labels) < 30 or len(set(labels)) < 2:
        return choices[0]
    label_array = np.array(labels)
    if distinct_questions >= 3:
        groups = np.array([str(q) for q in questions])
        splits = list(GroupKFold(min(folds, distinct_questions)).split(texts, label_array, groups))
    else:
        if min(np.unique(label_array, return_counts=True)[1]) < folds:
            return choices[0]
        splitter = StratifiedKFold(folds, shuffle=True, random_state=0)
        splits = list(splitter.split(texts, label_array))

    def rows(index: np.ndarray) -> tuple[list[str], np.ndarray, list[str | None], Any]:
        return (
            [texts[i] for i in index],
            embeddings[index],
            [questions[i] for i in index],
            None if extra is None else extra[index],
        )

    correct = np.zeros(len(choices), dtype=np.int64)
    for train, held in splits:
        if len(set(label_array[train])) < 2:
            continue
        model = LabelModel()
        train_texts, _, train_questions, train_extra = rows(train)
        model._fit_vocabulary(train_texts, train_questions, train_extra)
        train_features = model._features(*rows(train))
        held_features = model._features(*rows(held))
        for position, strength in enumerate(choices):
            model._fit_classifier(train_features, label_array[train].tolist(), strength, True)
            assert model.model is not None
            predicted = np.array(model.classes)[
                model.model.predict_proba(held_features).argmax(axis=1)
            ]
            correct[position] += int((predicted == label_array[held]).sum())
    return float(choices[int(np.argmax(correct))])
