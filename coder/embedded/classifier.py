"""The offline embedded classifier: coder's default backend ('local').

Without labelled examples it works zero-shot: each response is matched against each code's
definition, label, include criteria and examples (only codes that apply to the response's
question). Once reviewers have labelled responses (or a gold-format file is given) it learns:
a kernel ridge model per codebook (one system for all codes with enough examples), a pair
model of (response, code) features that also scores codes it never saw an example of, and
stance and relevance classifiers. See ``coder/embedded/models.py`` for the estimators.

This module holds the classifier's flow; each step lives in a module of its own: embedding
caches (vectors.py), the question prior (question_prior.py), training (fit_steps.py, gate.py),
theme scores (theme_scoring.py), relevance (relevance.py), stance (stance.py), evidence and
rationales (evidence.py) and the assembled proposal (proposal.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from coder.backends.base import ProposalResult
from coder.embedded.encoder import FAST_MODEL_NAME, MODEL_NAME, Encoder, get_encoder
from coder.embedded.evidence import focus_evidence, nearest_training
from coder.embedded.features import stance_only
from coder.embedded.fit_steps import (
    FIT_REVISION,
    FIT_SEED,
    MAX_KERNEL_EXAMPLES,
    MAX_TRAINING_PAIRS,
    PAIR_CHUNK,
    STANCE_C_CHOICES,
    code_counts,
    code_examples,
    fit_kernel,
    fit_pair,
    fit_relevance,
    fit_stack,
    fit_stance,
    kernel_rows,
    rare_code_counts,
    stance_counts,
    training_data,
    training_record,
)
from coder.embedded.gate import choose_fields
from coder.embedded.models import MIN_POSITIVES, CodeVectors, KernelParams, TrainedState
from coder.embedded.proposal import FieldDecisions, build_proposal, row_themes
from coder.embedded.question_prior import (
    CONCENTRATION_FLOOR,
    CONCENTRATION_RANGE,
    MIN_QUESTION_ANSWERS,
    question_prior,
)
from coder.embedded.relevance import OFF_TOPIC_MARGIN, decide_relevance
from coder.embedded.stance import (
    MIN_STANCE_EXAMPLES,
    STANCE_KERNEL_WEIGHT,
    STANCE_PREFIX,
    choose_stances,
    stance_mapping,
)
from coder.embedded.stance_pairs import STATE_KEY as PAIRS_KEY
from coder.embedded.stance_pairs import PairStanceModel
from coder.embedded.stance_pairs_gate import gate_stance_pairs
from coder.embedded.theme_pairs import STATE_KEY as THEME_PAIRS_KEY
from coder.embedded.theme_pairs_gate import gate_theme_pairs
from coder.embedded.theme_scoring import (
    ZERO_SHOT_SPREAD,
    ThemeScores,
    rare_code_prior,
    score_themes,
)
from coder.embedded.training import LabelledExample, examples_hash, load_state, save_state
from coder.embedded.vectors import CONCAT_WEIGHT, EmbeddingCache
from coder.errors import BackendError
from coder.store import Store, now
from schemas import Codebook, Response, ThemeAssignment

__all__ = [
    "CONCAT_WEIGHT",
    "CONCENTRATION_FLOOR",
    "CONCENTRATION_RANGE",
    "FIT_REVISION",
    "FIT_SEED",
    "MAX_KERNEL_EXAMPLES",
    "MAX_TRAINING_PAIRS",
    "MIN_QUESTION_ANSWERS",
    "MIN_STANCE_EXAMPLES",
    "OFF_TOPIC_MARGIN",
    "PAIR_CHUNK",
    "PRIOR_SAMPLE",
    "STANCE_C_CHOICES",
    "STANCE_KERNEL_WEIGHT",
    "STANCE_PREFIX",
    "ZERO_SHOT_SPREAD",
    "LocalClassifier",
    "ThemeScores",
    "stance_mapping",
    "training_record",
]

#: prepare() looks at up to this many answers per question (a seeded sample).
PRIOR_SAMPLE = 300


class LocalClassifier(EmbeddingCache):
    """Offline classifier on sentence embeddings; implements ``coder.backends.base.Classifier``."""

    backend = "local"

    def __init__(
        self,
        model_store: Store | None = None,
        *,
        encoder: Encoder | None = None,
        state: TrainedState | None = None,
        use_stored_model: bool = True,
        batch_size: int = 64,
        store: Store | None = None,
        model: str | None = None,
    ) -> None:
        """Use ``state``, else the latest model trained in ``model_store``, else zero-shot.

        ``model`` (from ``coder precode --model``) may only name the built-in encoder.
        """
        if model is not None and not model.startswith(MODEL_NAME):
            raise BackendError(
                f"unknown local model {model!r}: the local backend offers {FAST_MODEL_NAME!r} "
                f"and {MODEL_NAME!r}"
            )
        super().__init__(encoder, batch_size)
        self.model_store = model_store or store
        self.state = state
        if self.state is None and self.model_store is not None and use_stored_model:
            self.state = load_state(self.model_store)
        #: model name stored with each proposal (the Classifier protocol's ``model``)
        self.model = self._model_name()
        self._prototype_texts: dict[tuple[str, ...], list[str]] = {}
        #: per codebook hash: the question prior (questions x codes), from prepare()
        self._question_prior: dict[str, tuple[list[str], np.ndarray]] = {}
        #: a stance cross-encoder just fine-tuned (``--fine-tune``): fit() gates it in
        self.stance_pairs: PairStanceModel | None = None
        #: a theme cross-encoder just fine-tuned (``--theme-pairs``): fit() gates it in
        self.theme_pairs: PairStanceModel | None = None

    # --- identity --------------------------------------------------------------------------
    def _load_encoder(self) -> Encoder:
        # A trained state is used with the encoder it was trained with.
        # A project's fine-tuned encoder is read from its store (coder train --fine-tune).
        return get_encoder(self.state.encoder_name if self.state else None, store=self.model_store)

    def _model_name(self) -> str:
        name = self.state.encoder_name if self.state else FAST_MODEL_NAME
        if self.state is None and self.model_store is not None:
            name = self.model_store.project_encoder_name() or name  # a fine-tuned project
        if self._encoder is not None:
            name = self._encoder.name
        return f"{name}+{'kernel-ridge+pair' if self.state else 'zero-shot'}"

    @property
    def model_version(self) -> str:
        return self.state.version if self.state else "zero-shot"

    # --- the question prior ----------------------------------------------------------------
    def prepare(self, responses: Sequence[Response], codebook: Codebook) -> dict[str, float]:
        """Learn, from the project's unlabelled answers, how far each question's text says
        which themes its answers raise (the zero-shot question prior); returns the weights.

        A hypothesis such as "a whole pathway approach ... leads to sustained adoption"
        names its own themes, and its answers lean towards them; a generic question ("What
        could we do better?") does not. For each question, the prior is how much more
        similar the question's text is to each code than the code's other questions are
        (zero for codes limited to one question or group, as ArgKP's key points), weighted
        by the correlation between that and how much more the question's answers match
        each code than all answers do. A question whose answers do not follow its text
        (correlation ≤ 0, or fewer than MIN_QUESTION_ANSWERS answers) gets no prior. The
        decision adapts to each codebook and data set; no constant is fitted to one of them.
        ``propose`` calls this on its own batch when it was not called before.
        """
        key = codebook.content_hash()
        question_ids = codebook.question_ids
        if not question_ids or not codebook.themes:
            self._question_prior[key] = (question_ids, np.zeros((0, 0)))
            return {}
        # A question's lean is a mean: a seeded sample of each question's answers is as
        # good as all of them, and keeps a 100k-answer project from encoding everything
        # before the first proposal.
        by_question: dict[str | None, list[Response]] = {}
        for response in responses:
            by_question.setdefault(response.question, []).append(response)
        rng = np.random.default_rng(0)
        sample: list[Response] = []
        for group in by_question.values():
            if len(group) > PRIOR_SAMPLE:
                group = [group[i] for i in sorted(rng.choice(len(group), PRIOR_SAMPLE, False))]
            sample.extend(group)
        texts = [r.text or "" for r in sample]
        questions = [r.question for r in sample]
        codes, per_code = self.code_vectors(codebook)
        scores, _, _ = self.zero_shot_similarity(
            self.embed(texts), per_code, codes, codebook, None
        )
        question_vectors = self.embed([codebook.question_text(q) or q for q in question_ids])
        question_scores, _, _ = self.zero_shot_similarity(
            question_vectors, per_code, codes, codebook, None
        )
        prior, weights = question_prior(codebook, scores, questions, question_scores)
        self._question_prior[key] = (question_ids, prior)
        return weights

    def _prior_rows(
        self, texts: Sequence[str], questions: Sequence[str | None], codebook: Codebook
    ) -> np.ndarray:
        """The question prior for each row (zeros for questions without one)."""
        key = codebook.content_hash()
        if key not in self._question_prior:
            self.prepare(
                [Response(id=str(i), text=t, question=q) for i, (t, q) in
                 enumerate(zip(texts, questions, strict=True))],
                codebook,
            )
        question_ids, prior = self._question_prior[key]
        rows = np.zeros((len(texts), len(codebook.themes)), dtype=np.float32)
        if prior.size:
            position = {qid: i for i, qid in enumerate(question_ids)}
            for row, question in enumerate(questions):
                if question in position:
                    rows[row] = prior[position[question]]
        return rows

    # --- training ----------------------------------------------------------------------------
    def fit(
        self,
        examples: Sequence[LabelledExample],
        codebook: Codebook,
        kernel_params: KernelParams | None = None,
        stance_kernel_weight: float = STANCE_KERNEL_WEIGHT,
        gate: bool = True,
    ) -> TrainedState:
        """Learn from labelled examples; the classifier then proposes with the new state.

        With ``gate`` (the default), each field uses the trained model only where it is at
        least as good as zero-shot out of fold on these examples (coder/embedded/gate.py).
        """
        started = time.perf_counter()
        # Steadied per-code thresholds help a fine-tuned encoder's heads, not the shipped
        # encoder's (measured: see KernelParams.steady_thresholds).
        params = kernel_params or KernelParams(steady_thresholds=self._fine_tuned_encoder())
        data = training_data(self, examples)
        metrics: dict[str, Any] = {"n_examples": len(data.examples)}
        relevance_model = fit_relevance(data)
        # Per-code kernel model for codes with enough positives.
        counts = code_counts(data, codebook)
        kernel_codes = [code for code in codebook.theme_ids if counts[code] >= MIN_POSITIVES]
        rows = kernel_rows(data)
        theme_model, kernel_texts = fit_kernel(
            self, data, rows, kernel_codes, codebook, params, metrics
        )
        pair_model = fit_pair(self, data, codebook)
        stance_uses_themes = bool(
            codebook.stance and any(t.category in codebook.stance_ids for t in codebook.themes)
        )
        stack_model = fit_stack(
            self, [int(i) for i in rows], data.examples, codebook, theme_model, data.embeddings
        )
        if theme_model is not None:
            theme_model.held_out = None  # needed by the stack model only; not stored
        stance_model, stance_questions = fit_stance(
            self, data, codebook, pair_model, stance_uses_themes, metrics
        )
        version_params = {
            "kernel": vars(params),
            "stance_kernel_weight": stance_kernel_weight,
            "encoder": self.encoder.name,
            "codebook": codebook.content_hash()[:12],
            "revision": FIT_REVISION,
        }
        if self.stance_pairs is not None:
            version_params[PAIRS_KEY] = self.stance_pairs.name
        if self.theme_pairs is not None:
            version_params[THEME_PAIRS_KEY] = self.theme_pairs.name
        metrics["train_seconds"] = round(time.perf_counter() - started, 2)
        self.state = TrainedState(
            version=self._version(data.examples, version_params),
            encoder_name=self.encoder.name,
            trained_at=now(),
            n_examples=len(data.examples),
            params=version_params,
            theme_model=theme_model,
            pair_model=pair_model,
            stack_model=stack_model,
            stance_model=stance_model,
            stance_uses_themes=stance_uses_themes and pair_model is not None,
            stance_questions=stance_questions,
            relevance_model=relevance_model,
            train_texts=kernel_texts,
            metrics=metrics,
            rare_codes=rare_code_counts(data, codebook, counts),
            fields={"themes": "trained", "stance": "trained", "relevance": "trained"},
            code_examples=code_examples(data, counts),
            stance_counts=stance_counts(data),
        )
        if gate:
            self._gate(data.examples, codebook, kernel_params, stance_kernel_weight, started)
        refit = self._refit(codebook, kernel_params, stance_kernel_weight, gate)
        self._gate_pairs(data.examples, codebook, refit)
        self.state.metrics["record"] = training_record(
            data.examples, codebook, self.state.fields
        )
        self.model = self._model_name()
        return self.state

    def _gate_pairs(self, examples: list[LabelledExample], codebook: Codebook, refit: Any) -> None:
        """Gate in the cross-encoders just fine-tuned (stance, themes), each on its held-back
        answers against a refit of this classifier without them."""
        assert self.state is not None
        if self.stance_pairs is not None:
            self.state.metrics["stance_pairs"] = gate_stance_pairs(self, examples, codebook, refit)
        if self.theme_pairs is not None:
            self.state.metrics["theme_pairs"] = gate_theme_pairs(self, examples, codebook, refit)

    def _refit(
        self,
        codebook: Codebook,
        kernel_params: KernelParams | None,
        stance_kernel_weight: float,
        gate: bool,
    ) -> Any:
        """Fit a sibling the way this one was fitted (for the cross-encoder's gate)."""

        def refit(sibling: LocalClassifier, train: list[LabelledExample]) -> None:
            sibling.fit(train, codebook, kernel_params, stance_kernel_weight, gate)

        return refit

    def _fine_tuned_encoder(self) -> bool:
        """True when proposals run on a fine-tuned encoder, not a shipped one."""
        return self.encoder.name not in (MODEL_NAME, FAST_MODEL_NAME)

    def _version(self, examples: list[LabelledExample], version_params: dict[str, Any]) -> str:
        """The trained state's version: a hash of its examples and settings."""
        # A fine-tuned encoder's name is part of the version, so proposals trace it.
        name = self.encoder.name
        suffix = f"@{name}" if self._fine_tuned_encoder() else ""
        return f"local:{examples_hash(examples, version_params)}" + suffix

    def _gate(
        self,
        examples: list[LabelledExample],
        codebook: Codebook,
        kernel_params: KernelParams | None,
        stance_kernel_weight: float,
        started: float,
    ) -> None:
        """Choose, per field, the trained model or zero-shot (see coder/embedded/gate.py)."""
        state = self.state
        assert state is not None
        fields_chosen, report = choose_fields(
            self._sibling,
            examples,
            codebook,
            lambda classifier, train: classifier.fit(
                train, codebook, kernel_params, stance_kernel_weight, gate=False
            ),
        )
        state.fields = fields_chosen
        state.metrics["gate"] = report
        state.metrics["train_seconds"] = round(time.perf_counter() - started, 2)
        self.state = state

    def _zero_shot_matrix(
        self,
        texts: Sequence[str],
        questions: Sequence[str | None],
        embeddings: np.ndarray,
        sentence_vectors: list[np.ndarray],
        codebook: Codebook,
    ) -> np.ndarray:
        """Zero-shot theme scores (codes' text, sentence by sentence, plus the question prior)."""
        codes, per_code = self.code_vectors(codebook)
        scores, _, _ = self.zero_shot_similarity(
            embeddings, per_code, codes, codebook, sentence_vectors
        )
        return scores + self._prior_rows(texts, questions, codebook)

    def _sibling(self) -> LocalClassifier:
        """A zero-shot classifier sharing this one's encoder, caches and question prior."""
        other = LocalClassifier(None, encoder=self.encoder, use_stored_model=False)
        self.share_caches(other)
        other._question_prior = self._question_prior
        return other

    def _mode(self, name: str) -> str:
        """What proposes field ``name``: 'zero-shot' without a state, else the gate's choice."""
        if self.state is None:
            return "zero-shot"
        mode = (getattr(self.state, "fields", None) or {}).get(name, "trained")
        if mode == "stacked" and getattr(self.state, "stack_model", None) is None:
            return "hybrid"  # too few reviewed answers for the stack model
        return mode

    def save(self, store: Store | None = None, codebook_version: int | None = None) -> int:
        """Store the trained state in the project's ``models`` table; returns the row id."""
        target = store or self.model_store
        if target is None or self.state is None:
            raise BackendError("nothing to save: fit the classifier and give it a project store")
        return save_state(target, self.state, model=self.model, codebook_version=codebook_version)

    @classmethod
    def load(cls, store: Store, version: str | None = None, **options: Any) -> LocalClassifier:
        """A classifier with the project's latest trained state (or ``version``)."""
        state = load_state(store, version)
        if version is not None and state is None:
            raise BackendError(f"{store.path}: no local model with version {version!r}")
        return cls(store, state=state, use_stored_model=False, **options)

    # --- proposing -------------------------------------------------------------------------
    def _rare_code_prior(
        self, probabilities: np.ndarray, pairs: Sequence[tuple[int, int]], codes: CodeVectors
    ) -> np.ndarray:
        """Pair probabilities of rare codes, shifted by how rarely reviewers used them
        (see :func:`coder.embedded.theme_scoring.rare_code_prior`)."""
        return rare_code_prior(self.state, probabilities, pairs, codes)

    def code_scores(
        self, responses: Sequence[Response], codebook: Codebook
    ) -> list[dict[str, float]]:
        """For each response, the probability of every code that applies to its question."""
        texts = [response.text or "" for response in responses]
        questions = [response.question for response in responses]
        codes, per_code = self.code_vectors(codebook)
        scored = score_themes(self, texts, questions, self.embed(texts), codebook, codes, per_code)
        return [
            {codes.ids[code]: float(scored.probabilities[row, code]) for code in here}
            for row, here in enumerate(scored.candidates)
        ]

    def propose(self, responses: Sequence[Response], codebook: Codebook) -> list[ProposalResult]:
        """Propose labels for ``responses`` (one result per response, same order)."""
        if not responses:
            return []
        texts = [response.text or "" for response in responses]
        questions = [response.question for response in responses]
        embeddings, sentence_vectors = self._proposal_vectors(texts)
        codes, per_code = self.code_vectors(codebook)
        scored = score_themes(
            self, texts, questions, embeddings, codebook, codes, per_code, sentence_vectors
        )
        relevant, relevance_confidence, reasons = decide_relevance(
            self, texts, questions, embeddings, codebook, scored.similarity, scored.candidates
        )
        stances, stance_confidence = choose_stances(
            self, texts, embeddings, questions, codebook, scored.kernel_scores
        )
        decided = FieldDecisions(
            relevant,
            relevance_confidence,
            reasons,
            stances,
            stance_confidence,
            bare=[stance_only(text) for text in texts],
            nearest=nearest_training(self.state, embeddings),
        )
        results = []
        quoted: list[tuple[ThemeAssignment, np.ndarray]] = []
        for row, response in enumerate(responses):
            themes: list[ThemeAssignment] = []
            if relevant[row] and not decided.bare[row]:
                themes = row_themes(row, texts[row], sentence_vectors[row], scored, codes, per_code)
                quoted += [(theme, per_code[codes.ids.index(theme.code)]) for theme in themes]
            results.append(
                ProposalResult(
                    response_id=response.id,
                    proposal=build_proposal(
                        self._prototype_texts, row, response, themes, codebook, scored, decided
                    ),
                    model_version=self.model_version,
                    params={"model": self.model},
                )
            )
        focus_evidence(self, quoted)
        return results

    def _proposal_vectors(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The texts' vectors and their sentences' vectors, as the theme mode wants them."""
        state = self.state
        theme_mode = self._mode("themes")
        if state is None or theme_mode not in ("trained", "stacked") or (
            theme_mode == "trained" and state.pair_model is None
        ):
            # Zero-shot matches each sentence on its own: encoded alone, a sentence's vector
            # is more specific than its span of the whole response's pass.
            return self.embed(texts), self.separate_sentence_vectors(texts)
        return self.embed_sentences(texts)
