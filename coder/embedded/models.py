"""The trained pieces of the embedded classifier (scikit-learn and numpy only).

- :class:`KernelThemeModel`: one kernel ridge regression for all codes at once, on a kernel
  that adds word TF-IDF similarity to a cubic polynomial of embedding cosine, boosted when
  two responses answer the same question. Solving for all codes in one linear system keeps a
  refit within seconds; per-code thresholds are chosen on out-of-fold scores and scores are
  calibrated to probabilities with a one-feature logistic fit (Platt scaling).
- :class:`PairModel`: a logistic model on (response, code) pair features (cosines with the
  code's definition, label and examples, their rank among the question's codes, elementwise
  products). It scores codes it never saw an example of: new codes, new ArgKP motions.
- :class:`LabelModel`: multinomial logistic regression for stance and relevance.
- :class:`StackModel`: the few-label themes model (zero-shot, neighbours and kernel margins).

Each lives in its own module (kernel_model, pair_model, label_model, stack_model; shared
pieces in model_tools); this module holds :class:`TrainedState` and re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coder.embedded.kernel_model import KernelParams, KernelThemeModel
from coder.embedded.label_model import LabelModel, choose_regularisation
from coder.embedded.model_tools import (
    MIN_POSITIVES,
    best_f1_threshold,
    from_learned_parts,
    learned_parts,
    leave_one_out,
    platt,
    question_tagged,
    sigmoid,
    slim,
)
from coder.embedded.pair_model import (
    PAIR_SCALARS,
    CodeVectors,
    PairModel,
    pair_features,
    prototype_similarity,
)
from coder.embedded.stack_model import STACK_CHUNK, STACK_NEIGHBOURS, StackModel, stack_features

__all__ = [
    "MIN_POSITIVES",
    "PAIR_SCALARS",
    "STACK_CHUNK",
    "STACK_NEIGHBOURS",
    "CodeVectors",
    "KernelParams",
    "KernelThemeModel",
    "LabelModel",
    "PairModel",
    "StackModel",
    "TrainedState",
    "best_f1_threshold",
    "choose_regularisation",
    "from_learned_parts",
    "learned_parts",
    "leave_one_out",
    "pair_features",
    "platt",
    "prototype_similarity",
    "question_tagged",
    "sigmoid",
    "slim",
    "stack_features",
]


@dataclass
class TrainedState:
    """Everything :meth:`LocalClassifier.fit` learned.

    Stored in the project as JSON plus numpy arrays (:mod:`coder.embedded.state_io`), never
    pickled: a new plain field (dicts, lists, text, numbers, sets) is carried automatically.
    """

    version: str
    encoder_name: str
    trained_at: str
    n_examples: int
    params: dict[str, Any]
    theme_model: KernelThemeModel | None = None
    pair_model: PairModel | None = None
    stance_model: LabelModel | None = None
    stance_uses_themes: bool = False
    stance_questions: set[str] = field(default_factory=set)
    relevance_model: LabelModel | None = None
    train_texts: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    #: per code with 1 to MIN_POSITIVES-1 positives: (positives, examples it could apply to)
    rare_codes: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: per field (themes, stance, relevance), what proposes it: see coder/embedded/gate.py
    fields: dict[str, str] = field(default_factory=dict)
    #: reviewed answers per stance value (values with too few keep zero-shot behaviour)
    stance_counts: dict[str, int] = field(default_factory=dict)
    #: per code, the reviewed answers that carry it: extra examples for zero-shot matching
    code_examples: dict[str, list[str]] = field(default_factory=dict)
    #: themes from few labels: zero-shot, nearest reviewed answers and kernel in one model
    stack_model: StackModel | None = None
