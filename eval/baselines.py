"""Baselines scored beside every eval run, so a figure is never read without its floor.

Three references, each scored by :func:`eval.scoring.score` (the model's own scoring code,
so the figures compare like for like):

* **Naive**: themes from the *nearest theme*, stance and relevance from the *majority class*.

  - Nearest theme: each theme is embedded as ``"label: definition examples"`` (the label,
    a colon, the definition, then the examples joined with spaces) with the MiniLM encoder
    the local classifier uses; each gold-relevant answer is embedded and given the single
    theme whose vector is nearest (cosine), among the themes that apply to its
    question/group (``Theme.applies_to(item.scope)``, as in scoring). The cosines of the
    applicable themes are kept as scores, so key-point matching mAP has a baseline too.
  - Majority: the most common gold stance (over gold-relevant items with a stance) and the
    most common gold relevance, learned from the *training items* when the run trains
    (each fold's training folds for ``--cv``, each size's sample for a learning curve), else
    from the *scored items themselves*. The latter knows the gold distribution of the test
    set, so for a zero-shot run it is an optimistic reference; the output says which.
    Ties go to the earlier stance of the codebook's scale, and to "relevant".

* **TF-IDF** (only when the run trains): scikit-learn ``TfidfVectorizer`` over word 1-2grams
  of the answer text, then ``LogisticRegression`` one-vs-rest per theme (a theme is
  predicted at probability >= 0.5; when none is, the most probable applicable theme), and
  ``LogisticRegression`` for stance and for relevance. Fitted on exactly the training items
  the model was fitted on and scored on the same test items (pooled over the same folds
  for ``--cv``). A theme never seen in training is never predicted; a task with one class
  in training predicts that class.

*Added value* is the model's figure minus the baseline's, for the figures in
:data:`ADDED_VALUE_METRICS` (the majority's not-relevant F1 is 0, so for relevance the
added value is the model's F1 itself).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eval.gold import GoldItem
from eval.scoring import Prediction, flatten, score
from schemas import Codebook, Theme

NAIVE = "naive"
TFIDF = "tfidf"

#: the figures kept for each baseline (dotted paths of ``eval.scoring.score``'s output)
BASELINE_METRICS = (
    "themes.micro_f1", "themes.macro_f1", "themes.samples_f1", "stance.accuracy",
    "stance.macro_f1", "stance.kappa", "relevance.f1", "relevance.accuracy",
    "relevance.kappa", "matching.map_strict", "matching.map_relaxed",
)  # fmt: skip

#: the figures whose added value (model minus baseline) is reported and stored
ADDED_VALUE_METRICS = (
    "themes.micro_f1", "themes.macro_f1", "stance.accuracy", "relevance.f1",
    "matching.map_strict",
)  # fmt: skip

NAIVE_DEFINITION = (
    "themes: the nearest theme ('label: definition examples', MiniLM cosine) among the "
    "themes that apply to the item; stance and relevance: the majority class"
)
TFIDF_DEFINITION = (
    "TF-IDF word 1-2grams + logistic regression (themes one-vs-rest, threshold 0.5 or "
    "top-1; stance; relevance), fitted on the model's training items"
)
OPTIMISTIC_NOTE = (
    "majority taken from the scored items' own gold labels: an optimistic reference "
    "(it knows the test set's distribution)"
)


@dataclass(frozen=True)
class Split:
    """Training items and the test items a model fitted on them predicted."""

    train: Sequence[GoldItem]
    test: Sequence[GoldItem]


# --- naive: nearest theme -----------------------------------------------------------------
def theme_text(theme: Theme) -> str:
    """The text a theme is embedded as: ``label: definition`` then the examples."""
    return " ".join([f"{theme.label}: {theme.definition}", *theme.examples])


def nearest_theme_predictions(
    codebook: Codebook, items: Sequence[GoldItem], encoder: Any
) -> dict[str, Prediction]:
    """Each gold-relevant item's single nearest applicable theme (cosines kept as scores).

    ``encoder.encode(texts)`` must return L2-normalised vectors (the ``Encoder`` protocol
    of ``coder.embedded.encoder``), so a dot product is the cosine.
    """
    themes = list(codebook.themes)
    relevant = [item for item in items if item.relevant is not False]
    if not themes or not relevant:
        return {}
    theme_vectors = np.asarray(encoder.encode([theme_text(theme) for theme in themes]))
    answer_vectors = np.asarray(encoder.encode([item.text for item in relevant]))
    similarity = answer_vectors @ theme_vectors.T
    out: dict[str, Prediction] = {}
    for item, row in zip(relevant, similarity, strict=True):
        applies = [k for k, theme in enumerate(themes) if theme.applies_to(item.scope)]
        if not applies:
            continue
        best = max(applies, key=lambda k: float(row[k]))  # first of equals: codebook order
        out[item.id] = Prediction(
            id=item.id,
            labels=[themes[best].id],
            scores={themes[k].id: float(row[k]) for k in applies},
        )
    return out


# --- naive: majority class ----------------------------------------------------------------
@dataclass(frozen=True)
class Majority:
    """The majority stance and relevance of a set of reference items."""

    stance: str | None
    relevant: bool | None
    n_items: int

    @classmethod
    def learn(cls, reference: Sequence[GoldItem], codebook: Codebook) -> Majority:
        """Majority over the items scoring would score (stance: gold-relevant with a stance)."""
        stances = Counter(
            item.stance
            for item in reference
            if item.stance is not None and item.relevant is not False
        )
        order = {stance: k for k, stance in enumerate(codebook.stance_ids)}
        stance = (
            min(stances, key=lambda s: (-stances[s], order.get(s, len(order)), s))
            if stances
            else None
        )
        relevance = Counter(item.relevant for item in reference if item.relevant is not None)
        relevant = None
        if relevance:
            relevant = relevance[True] >= relevance[False]  # a tie goes to "relevant"
        return cls(stance=stance, relevant=relevant, n_items=len(reference))

    def as_dict(self) -> dict[str, Any]:
        """JSON form (stored with the run)."""
        return {"stance": self.stance, "relevant": self.relevant, "n_items": self.n_items}


def majority_predictions(majority: Majority, items: Sequence[GoldItem]) -> dict[str, Prediction]:
    """The same stance and relevance for every item (no themes)."""
    return {
        item.id: Prediction(id=item.id, stance=majority.stance, relevant=majority.relevant)
        for item in items
    }


# --- TF-IDF + logistic regression ---------------------------------------------------------
class _Constant:
    """Stands in for a classifier when training has a single class."""

    def __init__(self, value: Any) -> None:
        self.value = value


class TfidfBaseline:
    """TF-IDF word 1-2grams + logistic regression for themes, stance and relevance."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.vectorizer: Any = None
        self.theme_codes: list[str] = []
        self.theme_models: list[Any] = []
        self.stance_model: Any = None
        self.relevance_model: Any = None

    def _fit_task(self, features: Any, labels: list[Any]) -> Any:
        """A logistic regression on ``features`` (a constant when training has one class)."""
        from sklearn.linear_model import LogisticRegression

        if not labels:
            return None
        if len(set(labels)) == 1:
            return _Constant(labels[0])
        # Dual liblinear for two classes: with far more n-grams than answers it is the fast
        # exact solver (about 20 ms a code on NHS); Newton-CG (multinomial) for the stance scale:
        # lbfgs takes ten times as long on ~30k n-gram features.
        binary = len(set(labels)) == 2
        model = LogisticRegression(
            max_iter=1000,
            solver="liblinear" if binary else "newton-cg",
            dual=binary,
            random_state=self.seed,
        )
        model.fit(features, labels)
        return model

    def fit(self, train: Sequence[GoldItem], codebook: Codebook) -> TfidfBaseline:
        """Fit on gold items (themes on gold-relevant items, as the model is trained).

        Each theme is fitted on the training items it applies to (a motion's key point on
        that motion's answers), the same items it is predicted and scored on.
        """
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2))
        features = self.vectorizer.fit_transform([item.text for item in train] or [""])
        rows = {id(item): row for row, item in enumerate(train)}
        relevant = [item for item in train if item.relevant is not False]
        counts = Counter(code for item in relevant for code in set(item.labels))
        self.theme_codes = [c for c in codebook.theme_ids if counts[c]]
        self.theme_codes += sorted(set(counts) - set(self.theme_codes))
        themes_by_id = {theme.id: theme for theme in codebook.themes}

        def subset(items: list[GoldItem]) -> Any:
            return features[[rows[id(item)] for item in items]]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on tiny training sets
            self.theme_models = []
            for code in self.theme_codes:
                theme = themes_by_id.get(code)
                here = [item for item in relevant if theme is None or theme.applies_to(item.scope)]
                self.theme_models.append(
                    self._fit_task(subset(here), [code in item.labels for item in here])
                )
            stance_items = [item for item in relevant if item.stance is not None]
            self.stance_model = self._fit_task(
                subset(stance_items), [item.stance for item in stance_items]
            )
            relevance_items = [item for item in train if item.relevant is not None]
            self.relevance_model = self._fit_task(
                subset(relevance_items), [bool(item.relevant) for item in relevance_items]
            )
        return self

    def _predict_task(self, model: Any, features: Any, n: int) -> list[Any]:
        if model is None:
            return [None] * n
        if isinstance(model, _Constant):
            return [model.value] * n
        return [
            value.item() if hasattr(value, "item") else value for value in model.predict(features)
        ]

    def _theme_probabilities(self, features: Any, n: int) -> np.ndarray:
        columns = []
        for model in self.theme_models:
            if isinstance(model, _Constant):
                columns.append(np.full(n, 1.0 if model.value else 0.0))
            else:
                positive = list(model.classes_).index(True)
                columns.append(model.predict_proba(features)[:, positive])
        return np.column_stack(columns) if columns else np.zeros((n, 0))

    def predict(self, items: Sequence[GoldItem], codebook: Codebook) -> dict[str, Prediction]:
        """Predictions for ``items`` (themes limited to the codes that apply to each item)."""
        if self.vectorizer is None:
            raise RuntimeError("TfidfBaseline.predict called before fit")
        n = len(items)
        if not n:
            return {}
        features = self.vectorizer.transform([item.text for item in items])
        probabilities = self._theme_probabilities(features, n)
        stances = self._predict_task(self.stance_model, features, n)
        relevance = self._predict_task(self.relevance_model, features, n)
        themes_by_id = {theme.id: theme for theme in codebook.themes}
        out: dict[str, Prediction] = {}
        for row, item in enumerate(items):
            applies = [
                k
                for k, code in enumerate(self.theme_codes)
                if code not in themes_by_id or themes_by_id[code].applies_to(item.scope)
            ]
            scores = {self.theme_codes[k]: float(probabilities[row, k]) for k in applies}
            labels = [code for code, p in scores.items() if p >= 0.5]
            if not labels and scores:
                labels = [max(scores, key=lambda code: scores[code])]  # top-1 fallback
            relevant = relevance[row]
            out[item.id] = Prediction(
                id=item.id,
                labels=labels if relevant is not False else [],
                scores=scores if relevant is not False else {},
                stance=stances[row],
                relevant=relevant,
            )
        return out


# --- scoring ------------------------------------------------------------------------------
def _figures(metrics: dict[str, Any]) -> dict[str, Any]:
    flat = flatten(metrics)
    return {key: flat[key] for key in BASELINE_METRICS if key in flat}


def added_value(model: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    """Model minus baseline for each figure of :data:`ADDED_VALUE_METRICS` both have."""
    out: dict[str, float] = {}
    for key in ADDED_VALUE_METRICS:
        mine, theirs = model.get(key), baseline.get(key)
        if isinstance(mine, int | float) and isinstance(theirs, int | float):
            out[key] = float(mine) - float(theirs)
    return out


def evaluate(
    codebook: Codebook,
    items: Sequence[GoldItem],
    splits: Sequence[Split],
    *,
    naive_themes: dict[str, Prediction] | None,
    tfidf: bool,
    seed: int = 0,
    model_metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score the baselines on ``items`` for the run's ``splits``; a JSON-ready block.

    ``splits`` are the run's (training items, test items) pairs whose test parts cover
    ``items``: one pair for a plain or trained run, one per fold for ``--cv``. A split with
    no training items takes its majority from the scored items (said in ``majority_from``).
    ``naive_themes`` (from :func:`nearest_theme_predictions`) is None when no encoder could
    be loaded; the naive block then has no theme figures. TF-IDF runs only when ``tfidf``
    and every split has training items. With ``model_metrics`` (the model's ``score``
    output), ``added_value`` holds the model's margin over each baseline.
    """
    trained = bool(splits) and all(split.train for split in splits)
    majority_votes: list[Majority] = []
    majority_preds: dict[str, Prediction] = {}
    for split in splits:
        vote = Majority.learn(split.train if split.train else items, codebook)
        majority_votes.append(vote)
        majority_preds.update(majority_predictions(vote, split.test))
    # Themes and the majority are scored apart, so a (rare) majority "not relevant" does
    # not wipe out the nearest-theme figures: they are separate baselines in one column.
    naive = _figures(score(codebook, items, majority_preds, n_resamples=0))
    naive = {k: v for k, v in naive.items() if not k.startswith(("themes.", "matching."))}
    if naive_themes is not None:
        theme_figures = _figures(score(codebook, items, naive_themes, n_resamples=0))
        naive.update(
            {k: v for k, v in theme_figures.items() if k.startswith(("themes.", "matching."))}
        )
    if trained:
        source = (
            f"the training items of each of the {len(splits)} folds"
            if len(splits) > 1
            else f"the training items ({len(splits[0].train)})"
        )
    else:
        source = f"the scored items ({len(items)})"
    naive_block: dict[str, Any] = {
        "definition": NAIVE_DEFINITION,
        "majority_from": "training" if trained else "scored items",
        "majority_source": source,
        "majority": [vote.as_dict() for vote in majority_votes],
        "themes": "nearest theme" if naive_themes is not None else "unavailable (no encoder)",
        "metrics": _ordered(naive),
    }
    if not trained:
        naive_block["note"] = OPTIMISTIC_NOTE
    out: dict[str, Any] = {NAIVE: naive_block}
    if tfidf and trained:
        tfidf_preds: dict[str, Prediction] = {}
        for split in splits:
            tfidf_preds.update(
                TfidfBaseline(seed).fit(split.train, codebook).predict(split.test, codebook)
            )
        out[TFIDF] = {
            "definition": TFIDF_DEFINITION,
            "n_train": sum(len(split.train) for split in splits) // len(splits),
            "metrics": _figures(score(codebook, items, tfidf_preds, n_resamples=0)),
        }
    if model_metrics is not None:
        model = flatten(model_metrics)
        out["added_value"] = {
            name: added_value(model, block["metrics"])
            for name, block in out.items()
            if name in (NAIVE, TFIDF)
        }
    return out


def _ordered(figures: dict[str, Any]) -> dict[str, Any]:
    return {key: figures[key] for key in BASELINE_METRICS if key in figures}


def table_rows(
    model: dict[str, Any], baselines: dict[str, Any]
) -> list[tuple[str, Any, Any, Any, Any, Any]]:
    """(metric, model, naive, TF-IDF, added over naive, added over TF-IDF) for display."""
    flat = flatten(model)
    naive = baselines.get(NAIVE, {}).get("metrics", {})
    tfidf = baselines.get(TFIDF, {}).get("metrics", {}) if TFIDF in baselines else {}
    rows = []
    for key in ADDED_VALUE_METRICS:
        value = flat.get(key)
        if value is None and naive.get(key) is None:
            continue  # e.g. relevance on a set where every item is relevant
        over_naive = added_value({key: value}, naive).get(key)
        over_tfidf = added_value({key: value}, tfidf).get(key) if tfidf else None
        rows.append((key, value, naive.get(key), tfidf.get(key), over_naive, over_tfidf))
    return rows


def naive_themes_or_none(
    codebook: Codebook, items: Sequence[GoldItem], encoder_source: Any
) -> tuple[dict[str, Prediction] | None, str | None]:
    """Nearest-theme predictions, or (None, why) when the encoder cannot be loaded.

    ``encoder_source`` is a no-argument callable giving the encoder (the run's shared one,
    so answers the model already encoded are not encoded again). A missing encoder must not
    sink an eval of another backend: the majority and TF-IDF baselines still run.
    """
    from coder.errors import BackendError

    try:
        encoder = encoder_source()
    except (BackendError, ImportError, OSError) as error:
        return None, str(error)
    return nearest_theme_predictions(codebook, items, encoder), None


def curve_point(block: dict[str, Any]) -> dict[str, Any]:
    """The compact form of :func:`evaluate`'s block kept in each learning-curve point."""
    out: dict[str, Any] = {name: block[name]["metrics"] for name in (NAIVE, TFIDF) if name in block}
    out["majority_from"] = block[NAIVE]["majority_from"]
    if "added_value" in block:
        out["added_value"] = block["added_value"]
    return out


#: the figures shown per learning-curve size beside its baselines
CURVE_ROWS = ("themes.micro_f1", "stance.accuracy", "relevance.f1", "matching.map_strict")


def curve_rows(curve: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(training items, metric, model, naive, TF-IDF, added over naive, added over TF-IDF)."""
    rows: list[tuple[Any, ...]] = []
    for point in curve:
        block = point.get("baselines")
        if not block:
            continue
        naive, tfidf = block.get(NAIVE, {}), block.get(TFIDF, {})
        added = block.get("added_value", {})
        for key in CURVE_ROWS:
            if point.get(key) is None and naive.get(key) is None:
                continue
            rows.append(
                (
                    point["n_train"],
                    key,
                    point.get(key),
                    naive.get(key),
                    tfidf.get(key),
                    added.get(NAIVE, {}).get(key),
                    added.get(TFIDF, {}).get(key),
                )
            )
    return rows


def caption(block: dict[str, Any]) -> str:
    """One line saying where the majority came from (and when it is optimistic)."""
    naive = block.get(NAIVE, {})
    text = f"majority class from {naive.get('majority_source', '?')}"
    if naive.get("note"):
        text += f": {OPTIMISTIC_NOTE.split(': ', 1)[1]}"
    if TFIDF in block:
        text += f"; TF-IDF fitted on the model's training items ({block[TFIDF]['n_train']})"
    return text
