"""The offline embedded classifier: coder's default backend ('local').

Without labelled examples it works zero-shot: each response is matched against each code's
definition, label, include criteria and examples (only codes that apply to the response's
question). Once reviewers have labelled responses (or a gold-format file is given) it learns:
a kernel ridge model per codebook (one system for all codes with enough examples), a pair
model of (response, code) features that also scores codes it never saw an example of, and
stance and relevance classifiers. See ``coder/embedded/models.py`` for the estimators.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from coder.backends.base import ProposalResult
from coder.embedded.encoder import FAST_MODEL_NAME, MODEL_NAME, Encoder, get_encoder
from coder.embedded.features import (
    OFF_TOPIC_CHATTER,
    canonical_stances,
    clause_spans,
    content_words,
    non_answer_reason,
    parse_examples,
    sentence_spans,
    split_sentences,
    stance_cue,
    stance_only,
    theme_prototypes,
)
from coder.embedded.gate import choose_fields
from coder.embedded.models import (
    MIN_POSITIVES,
    CodeVectors,
    KernelParams,
    KernelThemeModel,
    LabelModel,
    PairModel,
    StackModel,
    TrainedState,
    choose_regularisation,
    pair_features,
    prototype_similarity,
    sigmoid,
)
from coder.embedded.training import (
    LabelledExample,
    examples_hash,
    library_versions,
    load_state,
    save_state,
)
from coder.errors import BackendError
from coder.store import Store, now
from schemas import Codebook, Proposal, Response, ThemeAssignment

#: Zero-shot relevance: a response is off-topic when it is closer, by at least this cosine
#: margin, to an off-topic prototype (the codebook's not-relevant examples and the built-in
#: workshop chatter below) than to its question and every code that applies to it.
OFF_TOPIC_MARGIN = 0.05
#: Zero-shot theme scores blend two views of a code: its prototypes one by one
#: (definition, label, include criteria, the best-matching examples) and all of its text
#: embedded as one ("label: definition examples"). The first wins on codebooks with many
#: examples (NHS), the second on short workshop codebooks; the blend holds up on both.
CONCAT_WEIGHT = 0.3
#: Zero-shot: besides the best code, a code is given when its score is within this many
#: standard deviations (of the response's scores over its candidate codes) of the best.
#: Relative to the response's own spread, so it does not depend on a codebook's scale.
ZERO_SHOT_SPREAD = 0.2
#: A stance value reviewers gave fewer times than this keeps zero-shot behaviour: the
#: respondent's explicit opening ("Not really", "Partly") still gives it.
MIN_STANCE_EXAMPLES = 3
#: Answers per question needed before the question prior is trusted (see prepare()).
MIN_QUESTION_ANSWERS = 5
#: _concentration(): where, in units of the chance maximum, the question prior starts to
#: apply to cross-cutting codes, and over how wide a range it reaches full strength.
#: (Chosen on the four small codebooks in tests/codebooks and rapid_insight_dev together:
#: from 1.0 to 1.5 no set moves by more than 0.05; 1.3 keeps every one above its baseline.)
CONCENTRATION_FLOOR = 1.3
CONCENTRATION_RANGE = 0.2
#: prepare() looks at up to this many answers per question (a seeded sample).
PRIOR_SAMPLE = 300
#: Pair features are built for at most this many (response, code) pairs when training.
MAX_TRAINING_PAIRS = 60_000
#: Responses whose pair features are built at once during training (bounds memory).
PAIR_CHUNK = 1_000
#: The kernel model keeps every training response; beyond this many it samples.
MAX_KERNEL_EXAMPLES = 7_000
#: Kernel model columns that predict stance values (not codes) start with this.
STANCE_PREFIX = "\x00stance:"
#: Weight of the kernel model's stance columns against the stance logistic model.
STANCE_KERNEL_WEIGHT = 0.7
#: Inverse regularisation strengths tried for the stance model (relevance keeps the default).
#: Which one wins depends on the data: 5-fold CV on NHS dev prefers 0.5 (accuracy 0.700 vs
#: 0.699 at 2), unseen ArgKP motions prefer 2 (0.723 vs 0.712), so each fit chooses.
STANCE_C_CHOICES = (0.5, 2.0)


@dataclass
class ThemeScores:
    """Per (response, code) scores of one batch."""

    candidates: list[list[int]]
    similarity: np.ndarray
    best_proto: np.ndarray
    probabilities: np.ndarray
    assigned: np.ndarray
    source: np.ndarray
    #: raw kernel ridge scores, columns in the theme model's label order (None: no model)
    kernel_scores: np.ndarray | None = None


def stance_mapping(codebook: Codebook) -> dict[str, str]:
    """The codebook's stance values placed on the default scale (for explicit openings)."""
    if codebook.stance is None:
        return {}
    return canonical_stances([(v.id, v.label or "") for v in codebook.stance.values])


#: What fit learns, as a number in every model's version: bump it when fit changes, so that
#: a refit on the same labels is a new version (re-proposing everything), not a rerun of
#: the old one (which re-proposes only what a killed run left). 2: the stacked themes model.
FIT_REVISION = 2
#: Seed of every random choice in fit (negative sampling, folds, subsamples): a refit on
#: the same labels gives the same model and version.
FIT_SEED = 0


def training_record(
    examples: Sequence[LabelledExample], codebook: Codebook, fields: dict[str, str]
) -> dict[str, Any]:
    """What a model was trained on, for ``coder models``: labels per field, seed, libraries."""
    relevant = [example for example in examples if example.relevant is not False]
    return {
        "examples": {
            "total": len(examples),
            "relevance": {
                "relevant": len(relevant),
                "not relevant": len(examples) - len(relevant),
            },
            "themes": dict(
                sorted(Counter(code for e in relevant for code in e.themes).items())
            ),
            "stance": dict(
                sorted(Counter(str(e.stance) for e in relevant if e.stance is not None).items())
            ),
        },
        "codebook_hash": codebook.content_hash()[:12],
        "seed": FIT_SEED,
        "libraries": library_versions(),
        "fields": dict(fields),
    }


def _concentration(lean: np.ndarray) -> float:
    """How far a question's answers concentrate on one code, from 0 to 1.

    ``lean`` is how much more the question's answers match each code than all answers do.
    The top code's lean, in standard deviations of the other codes' leans above their mean,
    is set against what the top of that many values reaches by chance (about sqrt(2 ln n)).
    Near chance, the answers spread over many codes (a survey question about virtual wards:
    comfort, safety, equipment, carers...) and the question's text says little about any one
    answer; well above it (a hypothesis whose answers nearly all discuss its one theme), the
    question prior applies in full.
    """
    if len(lean) < 3:
        return 0.0
    order = np.argsort(lean)
    rest = lean[order[:-1]]
    if float(rest.std()) == 0.0:
        return 1.0
    top = float((lean[order[-1]] - rest.mean()) / rest.std())
    ratio = top / float(np.sqrt(2 * np.log(len(lean))))
    return float(np.clip((ratio - CONCENTRATION_FLOOR) / CONCENTRATION_RANGE, 0.0, 1.0))


class LocalClassifier:
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
        self.model_store = model_store or store
        self._encoder = encoder
        self.batch_size = batch_size
        self.state = state
        if self.state is None and self.model_store is not None and use_stored_model:
            self.state = load_state(self.model_store)
        #: model name stored with each proposal (the Classifier protocol's ``model``)
        self.model = self._model_name()
        self._vectors: dict[str, np.ndarray] = {}
        #: per text, one vector per sentence (from the same encoder pass as the text's)
        self._sentence_vectors: dict[str, np.ndarray] = {}
        self._prototype_texts: dict[tuple[str, ...], list[str]] = {}
        self._code_cache: dict[str, tuple[CodeVectors, list[np.ndarray]]] = {}
        self._concat_cache: dict[str, np.ndarray] = {}
        #: per codebook hash: the question prior (questions x codes), from prepare()
        self._question_prior: dict[str, tuple[list[str], np.ndarray]] = {}

    # --- identity --------------------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            # A trained state is used with the encoder it was trained with.
            # A project's fine-tuned encoder is read from its store (coder train --fine-tune).
            self._encoder = get_encoder(
                self.state.encoder_name if self.state else None, store=self.model_store
            )
        return self._encoder

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

    # --- embeddings ------------------------------------------------------------------------
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``, each distinct text encoded once per classifier."""
        missing = list(dict.fromkeys(text for text in texts if text not in self._vectors))
        if missing:
            for text, vector in zip(
                missing, self.encoder.encode(missing, batch_size=self.batch_size), strict=True
            ):
                self._vectors[text] = vector
            if len(self._vectors) > 200_000:  # bound memory in long sessions
                self._vectors = {text: self._vectors[text] for text in texts}
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.vstack([self._vectors[text] for text in texts])

    def embed_sentences(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Embeddings of ``texts`` and of each text's sentences (``split_sentences`` order).

        Encoders offering ``encode_spans`` give both from one pass; others encode the
        sentences separately.
        """
        missing = list(dict.fromkeys(t for t in texts if t not in self._sentence_vectors))
        if missing:
            spans = [sentence_spans(text) for text in missing]
            encode_spans = getattr(self.encoder, "encode_spans", None)
            if encode_spans is not None:
                vectors, per_text = encode_spans(missing, spans, batch_size=self.batch_size)
                for text, vector in zip(missing, vectors, strict=True):
                    self._vectors.setdefault(text, vector)
            else:
                self.embed(missing)
                per_text = [
                    self.embed([text[b:e] for b, e in found])
                    if len(found) > 1
                    else np.repeat(self._vectors[text][None, :], len(found), axis=0)
                    for text, found in zip(missing, spans, strict=True)
                ]
            if len(self._sentence_vectors) > 200_000:  # bound memory in long sessions
                self._sentence_vectors = {}
            for text, found in zip(missing, per_text, strict=True):
                self._sentence_vectors[text] = found
        embeddings = self.embed(texts)
        return embeddings, [self._sentence_vectors[text] for text in texts]

    def separate_sentence_vectors(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Per text, its sentences each encoded on their own (the text's vector when one)."""
        sentences = [split_sentences(text) for text in texts]
        flat = [sentence for found in sentences if len(found) > 1 for sentence in found]
        if flat:
            self.embed(flat)
        return [
            self.embed(found) if len(found) > 1 else self.embed([text] * len(found))
            for text, found in zip(texts, sentences, strict=True)
        ]

    def code_vectors(self, codebook: Codebook) -> tuple[CodeVectors, list[np.ndarray]]:
        """Embeddings of each theme's prototypes (cached per codebook content)."""
        key = codebook.content_hash()
        if key not in self._code_cache:
            prototypes = [theme_prototypes(theme) for theme in codebook.themes]
            flat = [text for texts in prototypes for text in texts]
            vectors = self.embed(flat) if flat else np.zeros((0, self.encoder.dim), np.float32)
            per_code: list[np.ndarray] = []
            start = 0
            for texts in prototypes:
                per_code.append(vectors[start : start + len(texts)])
                start += len(texts)
            dim = self.encoder.dim
            codes = CodeVectors(
                ids=codebook.theme_ids,
                definition=np.vstack([v[0] for v in per_code]) if per_code else np.zeros((0, dim)),
                label=np.vstack([v[1] for v in per_code]) if per_code else np.zeros((0, dim)),
                examples=[
                    v[2 + len([i for i in t.include if i.strip()]) :]
                    for v, t in zip(per_code, codebook.themes, strict=True)
                ],
                words=[content_words(f"{t.label} {t.definition}") for t in codebook.themes],
                n_head=[2 + len([i for i in t.include if i.strip()]) for t in codebook.themes],
                categories=[str(t.category or "") for t in codebook.themes],
            )
            self._code_cache = {key: (codes, per_code)}
        return self._code_cache[key]

    def concat_vectors(self, codebook: Codebook) -> np.ndarray:
        """Each theme's whole text ("label: definition examples") embedded as one vector."""
        key = codebook.content_hash()
        if key not in self._concat_cache:
            texts = [
                f"{t.label}: {t.definition} {' '.join(parse_examples(t.examples))}".strip()
                for t in codebook.themes
            ]
            self._concat_cache = {key: self.embed(texts)}
        return self._concat_cache[key]

    def _zero_shot_similarity(
        self,
        embeddings: np.ndarray,
        per_code: list[np.ndarray],
        codes: CodeVectors,
        codebook: Codebook,
        sentence_vectors: list[np.ndarray] | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Zero-shot theme scores (blend of prototype and whole-text matches) + prototype sims.

        The prototype view matches a response that raises several topics sentence by
        sentence (each sentence encoded alone); the whole-text view matches the response.
        """
        similarity, best_proto = prototype_similarity(embeddings, per_code, codes.n_head)
        if sentence_vectors is not None:
            multi_rows = [row for row, found in enumerate(sentence_vectors) if len(found) > 1]
            if multi_rows:
                flat = np.vstack([sentence_vectors[row] for row in multi_rows])
                starts = np.cumsum([0] + [len(sentence_vectors[row]) for row in multi_rows[:-1]])
                by_sentence, _ = prototype_similarity(flat, per_code, codes.n_head)
                best_sentence = np.maximum.reduceat(by_sentence, starts, axis=0)
                similarity[multi_rows] = np.maximum(similarity[multi_rows], best_sentence)
        concat = embeddings @ self.concat_vectors(codebook).T if len(per_code) else similarity
        blended = (1 - CONCAT_WEIGHT) * similarity + CONCAT_WEIGHT * concat
        return blended.astype(np.float32), similarity, best_proto

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
        embeddings = self.embed(texts)
        scores, _, _ = self._zero_shot_similarity(embeddings, per_code, codes, codebook, None)
        question_vectors = self.embed([codebook.question_text(q) or q for q in question_ids])
        question_scores, _, _ = self._zero_shot_similarity(
            question_vectors, per_code, codes, codebook, None
        )
        applies = np.array(
            [[t.applies_to(q) for t in codebook.themes] for q in question_ids], dtype=bool
        )
        centred = np.zeros_like(question_scores)
        for column in range(question_scores.shape[1]):
            rows = applies[:, column]
            if rows.sum() > 1:
                centred[rows, column] = (
                    question_scores[rows, column] - question_scores[rows, column].mean()
                )
        # A code limited to one question ("Pre-requisites" on Q10) has no other question to
        # be compared with: it is compared with the question's other, cross-cutting codes
        # instead. Where every code is limited to its question (ArgKP's key points) there is
        # nothing to compare, and no prior.
        for position in range(len(question_ids)):
            applicable_here = np.flatnonzero(applies[position])
            single = [c for c in applicable_here if applies[:, c].sum() == 1]
            if single and len(applicable_here) > len(single):
                mean_here = question_scores[position, applicable_here].mean()
                for code_column in single:
                    centred[position, code_column] = question_scores[position, code_column] - mean_here
        overall = scores.mean(axis=0) if len(scores) else np.zeros(len(codes.ids))
        limited = applies.sum(axis=0) == 1  # codes that apply to one question only
        weights: dict[str, float] = {}
        prior = np.zeros_like(centred)
        for position, qid in enumerate(question_ids):
            answers = [i for i, q in enumerate(questions) if q == qid]
            here = applies[position] & (centred[position] != 0)
            weight = concentration = 0.0
            if len(answers) >= MIN_QUESTION_ANSWERS and here.sum() > 2:
                lean = scores[answers].mean(axis=0) - overall
                a, b = centred[position, here], lean[here]
                if a.std() > 0 and b.std() > 0:
                    weight = max(0.0, float(np.corrcoef(a, b)[0, 1]))
                concentration = _concentration(lean[applies[position]])
            # Codes limited to this question keep the agreement weight; cross-cutting codes
            # are pushed only as far as the answers concentrate on one of them.
            scale = np.where(limited, 1.0, concentration)
            prior[position] = weight * scale * centred[position]
            weights[qid] = round(weight * concentration, 3)
        self._question_prior[key] = (question_ids, prior)
        return weights

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
        params = kernel_params or KernelParams()
        examples = list(examples)
        if not examples:
            raise BackendError("no labelled examples to train on: review some responses first")
        texts = [example.text for example in examples]
        embeddings = self.embed(texts)
        questions = [example.question for example in examples]
        themes_by_id = codebook.theme_ids
        metrics: dict[str, Any] = {"n_examples": len(examples)}

        # Relevance: the plain rules decide blanks; a model learns the rest when it can.
        relevance_model = None
        ruled = [non_answer_reason(text, soft=False) is not None for text in texts]
        rel_rows = [
            index
            for index, example in enumerate(examples)
            if example.relevant is not None and not ruled[index]
        ]
        rel_labels = [str(bool(examples[index].relevant)) for index in rel_rows]
        if (
            len(set(rel_labels)) == 2
            and min(rel_labels.count("True"), rel_labels.count("False")) >= 3
        ):
            relevance_model = LabelModel().fit(
                [texts[i] for i in rel_rows],
                embeddings[rel_rows],
                [questions[i] for i in rel_rows],
                rel_labels,
            )

        relevant_rows = [i for i, example in enumerate(examples) if example.relevant is not False]

        # Per-code kernel model for codes with enough positives.
        counts = {code: 0 for code in themes_by_id}
        for index in relevant_rows:
            for code in examples[index].themes:
                if code in counts:
                    counts[code] += 1
        kernel_codes = [code for code in themes_by_id if counts[code] >= MIN_POSITIVES]
        # Rare codes (some positives, too few for a model of their own): how often they
        # were used among the answers they could apply to (see _rare_code_prior).
        rare_codes: dict[str, tuple[int, int]] = {}
        applicable_counts = Counter(examples[i].question for i in relevant_rows)
        for theme in codebook.themes:
            if 0 < counts[theme.id] < MIN_POSITIVES:
                seen = sum(
                    count
                    for question, count in applicable_counts.items()
                    if theme.applies_to(question)
                )
                rare_codes[theme.id] = (counts[theme.id], seen)
        theme_model = None
        kernel_texts: list[str] = []
        rows = relevant_rows
        if len(rows) > MAX_KERNEL_EXAMPLES:
            rows = sorted(np.random.default_rng(0).choice(rows, MAX_KERNEL_EXAMPLES, replace=False))
        if kernel_codes and len(relevant_rows) >= 20:
            stance_columns = [
                STANCE_PREFIX + value
                for value in (codebook.stance_ids if codebook.stance else [])
                if any(examples[i].stance == value for i in rows)
            ]
            kernel_labels = kernel_codes + (stance_columns if len(stance_columns) >= 2 else [])
            column = {code: position for position, code in enumerate(kernel_labels)}
            kernel_input = [texts[i] for i in rows]
            kernel_questions = [questions[i] for i in rows]
            kernel_embeddings = embeddings[rows]
            label_sets = [
                list(examples[i].themes)
                + ([f"{STANCE_PREFIX}{examples[i].stance}"] if examples[i].stance else [])
                for i in rows
            ]
            if params.codebook_examples:
                # The codebook's own examples are labelled data too; they help rare codes
                # most. They are fitted on but never used to choose thresholds.
                extra = [
                    (example, theme.id)
                    for theme in codebook.themes
                    if theme.id in column
                    for example in parse_examples(theme.examples)
                ]
                kernel_input += [text for text, _ in extra]
                kernel_questions += [None] * len(extra)
                label_sets += [[code] for _, code in extra]
                if extra:
                    kernel_embeddings = np.vstack(
                        [kernel_embeddings, self.embed([text for text, _ in extra])]
                    )
            real = np.arange(len(kernel_input)) < len(rows)
            targets = np.zeros((len(kernel_input), len(kernel_labels)))
            for row, codes_here in enumerate(label_sets):
                for code in codes_here:
                    if code in column:
                        targets[row, column[code]] = 1.0
            theme_model = KernelThemeModel(labels=kernel_labels, params=params).fit(
                kernel_input, kernel_embeddings, kernel_questions, targets, tune_rows=real
            )
            kernel_texts = kernel_input
            assert theme_model.cv_f1 is not None
            metrics["kernel_cv_f1"] = dict(
                zip(kernel_codes, np.round(theme_model.cv_f1, 3).tolist(), strict=False)
            )

        # Pair model over (response, code) features: generalises to unseen codes.
        codes, _ = self.code_vectors(codebook)
        index_of = codes.index()
        candidates: list[list[int]] = []
        truth: list[float] = []
        rng = np.random.default_rng(0)
        pair_rows = relevant_rows
        for index in pair_rows:
            example = examples[index]
            here = [index_of[t.id] for t in codebook.themes_for(example.question)]
            candidates.append(here)
        response_words = [content_words(texts[i]) for i in pair_rows]
        pair_model = None
        stance_uses_themes = bool(
            codebook.stance and any(t.category in codebook.stance_ids for t in codebook.themes)
        )
        total_pairs = sum(len(c) for c in candidates)
        if total_pairs:
            # Sample negatives when there are too many pairs (keeps every positive).
            keep_probability = min(1.0, MAX_TRAINING_PAIRS / total_pairs)
            sampled: list[list[int]] = []
            for row, index in enumerate(pair_rows):
                example = examples[index]
                positive = {index_of[c] for c in example.themes if c in index_of}
                uncertain = {index_of[c] for c in example.uncertain_themes if c in index_of}
                chosen = [
                    code
                    for code in candidates[row]
                    if code not in uncertain
                    and (code in positive or rng.random() < keep_probability)
                ]
                sampled.append(chosen)
            # Features see every candidate (ranks and centres depend on the whole list, as
            # at proposal time); only the sampled pairs are kept, in chunks to bound memory.
            blocks: list[np.ndarray] = []
            pair_embeddings = embeddings[pair_rows]
            for start in range(0, len(pair_rows), PAIR_CHUNK):
                stop = start + PAIR_CHUNK
                block, pairs = pair_features(
                    pair_embeddings[start:stop],
                    response_words[start:stop],
                    candidates[start:stop],
                    codes,
                    keep=sampled[start:stop],
                )
                blocks.append(block)
                for row, code_position in pairs:
                    example = examples[pair_rows[start + row]]
                    truth.append(1.0 if codes.ids[code_position] in example.themes else 0.0)
            features = np.vstack(blocks)
            truth_array = np.array(truth)
            if truth_array.sum() >= 10 and (1 - truth_array).sum() >= 10:
                pair_model = PairModel().fit(features, truth_array)

        stack_model = self._fit_stack(
            [int(i) for i in rows], examples, codebook, theme_model, embeddings
        )
        if theme_model is not None:
            theme_model.held_out = None  # needed by the stack model only; not stored

        # Stance: words, question-tagged words, embeddings, and (when codes carry a stance,
        # as ArgKP key points do) how well the response matches each stance's codes.
        stance_model = None
        stance_questions: set[str] = set()
        if codebook.stance:
            stance_rows = [
                i
                for i in relevant_rows
                if examples[i].stance is not None and examples[i].stance in codebook.stance_ids
            ]
            stance_labels = [str(examples[i].stance) for i in stance_rows]
            if len(set(stance_labels)) >= 2:
                evidence: np.ndarray | None = None
                if stance_uses_themes and pair_model is not None:
                    evidence = self._stance_evidence(
                        embeddings[stance_rows],
                        [texts[i] for i in stance_rows],
                        [questions[i] for i in stance_rows],
                        codebook,
                        pair_model,
                    )
                stance_texts = [texts[i] for i in stance_rows]
                stance_question_list = [questions[i] for i in stance_rows]
                strength = choose_regularisation(
                    stance_texts,
                    embeddings[stance_rows],
                    stance_question_list,
                    stance_labels,
                    evidence,
                    STANCE_C_CHOICES,
                )
                metrics["stance_C"] = strength
                stance_model = LabelModel().fit(
                    stance_texts,
                    embeddings[stance_rows],
                    stance_question_list,
                    stance_labels,
                    extra=evidence,
                    # Balanced classes scored better in 5-fold CV on NHS dev (0.696 vs 0.691).
                    balanced=True,
                    C=strength,
                )
                stance_questions = {str(questions[i]) for i in stance_rows}

        version_params = {
            "kernel": vars(params),
            "stance_kernel_weight": stance_kernel_weight,
            "encoder": self.encoder.name,
            "codebook": codebook.content_hash()[:12],
            "revision": FIT_REVISION,
        }
        metrics["train_seconds"] = round(time.perf_counter() - started, 2)
        self.state = TrainedState(
            # A fine-tuned encoder's name is part of the version, so proposals trace it.
            version=f"local:{examples_hash(examples, version_params)}"
            + ("" if self.encoder.name in (MODEL_NAME, FAST_MODEL_NAME) else f"@{self.encoder.name}"),
            encoder_name=self.encoder.name,
            trained_at=now(),
            n_examples=len(examples),
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
            rare_codes=rare_codes,
            fields={"themes": "trained", "stance": "trained", "relevance": "trained"},
            code_examples={
                code: [
                    texts[i]
                    for i in relevant_rows
                    if code in examples[i].themes and not stance_only(texts[i])
                ]
                for code in themes_by_id
                if counts[code] > 0
            },
            stance_counts=dict(
                Counter(
                    str(examples[i].stance) for i in relevant_rows if examples[i].stance is not None
                )
            ),
        )
        state = self.state
        if gate:
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
        state.metrics["record"] = training_record(examples, codebook, state.fields)
        self.state = state
        self.model = self._model_name()
        return self.state

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
        scores, _, _ = self._zero_shot_similarity(
            embeddings, per_code, codes, codebook, sentence_vectors
        )
        return scores + self._prior_rows(texts, questions, codebook)

    def _kernel_margins(
        self, model: KernelThemeModel | None, raw: np.ndarray | None, codebook: Codebook
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per code, the kernel score minus its threshold (0 where the model has no column),
        and which codes it covers."""
        codes = codebook.theme_ids
        covered = np.zeros(len(codes), dtype=bool)
        margins = np.zeros((0 if raw is None else len(raw), len(codes)))
        if model is None or raw is None or model.thresholds is None:
            return margins, covered
        position = {code: column for column, code in enumerate(codes)}
        for column, label in enumerate(model.labels):
            if label in position:
                margins[:, position[label]] = raw[:, column] - model.thresholds[column]
                covered[position[label]] = True
        return margins, covered

    def _fit_stack(
        self,
        rows: list[int],
        examples: Sequence[LabelledExample],
        codebook: Codebook,
        theme_model: KernelThemeModel | None,
        embeddings: np.ndarray,
    ) -> StackModel | None:
        """The few-label theme model (see :class:`StackModel`), or None without data for it.

        Its kernel feature for the reviewed answers is the kernel model's held-out score,
        the same rows in the same order (``rows`` are the kernel model's rows).
        """
        if len(rows) < 10 or not codebook.themes:
            return None
        texts = [examples[i].text for i in rows]
        questions = [examples[i].question for i in rows]
        applicable = np.array(
            [[t.applies_to(q) for t in codebook.themes] for q in questions], dtype=bool
        )
        targets = np.array(
            [[code in examples[i].themes for code in codebook.theme_ids] for i in rows],
            dtype=np.float64,
        )
        held = theme_model.held_out if theme_model is not None else None
        raw = None
        if theme_model is not None and held is not None and len(held) >= len(rows):
            raw = held[: len(rows)]
        margins, covered = self._kernel_margins(theme_model if raw is not None else None, raw, codebook)
        if raw is None:
            margins = np.zeros(targets.shape)
        # The same sentence vectors as when proposing in this mode (one encoder pass).
        _, sentence_vectors = self.embed_sentences(texts)
        zero_shot = self._zero_shot_matrix(
            texts, questions, embeddings[rows], sentence_vectors, codebook
        )
        try:
            return StackModel(codes=list(codebook.theme_ids)).fit(
                zero_shot, applicable, embeddings[rows], questions, targets, margins, covered
            )
        except (BackendError, ValueError):  # one class only: nothing to combine
            return None

    def _sibling(self) -> LocalClassifier:
        """A zero-shot classifier sharing this one's encoder, caches and question prior."""
        other = LocalClassifier(None, encoder=self.encoder, use_stored_model=False)
        other._vectors = self._vectors
        other._sentence_vectors = self._sentence_vectors
        other._code_cache = self._code_cache
        other._concat_cache = self._concat_cache
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
        return save_state(
            target,
            self.state,
            model=self.model,
            version=self.state.version,
            params=self.state.params,
            metrics=self.state.metrics,
            n_examples=self.state.n_examples,
            codebook_version=codebook_version,
        )

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
        """Pair probabilities of rare codes, shifted by how rarely reviewers used them.

        The pair model's odds are those of an average code. A code reviewers applied only
        once or twice in hundreds of answers is far rarer, so its odds are scaled by the
        ratio of its smoothed rate to the pair model's base rate (never raised). Codes with
        no positive at all are left alone: they may be new, with no chance to be used yet.
        On NHS dev (5-fold CV) this removed 134 proposals of which 1 was right.
        """
        state = self.state
        rare = getattr(state, "rare_codes", None) if state is not None else None
        base_rate = getattr(state.pair_model, "base_rate", 0.0) if state else 0.0
        if not rare or not base_rate or not len(probabilities):
            return probabilities
        shift = np.zeros(len(probabilities))
        for position, (_, code) in enumerate(pairs):
            found = rare.get(codes.ids[code])
            if found is not None:
                positives, seen = found
                rate = (positives + 0.5) / (seen + 1.0)
                shift[position] = min(0.0, float(np.log(rate / base_rate)))
        clipped = np.clip(probabilities, 1e-6, 1 - 1e-6)
        return sigmoid(np.log(clipped / (1 - clipped)) + shift)

    def _stance_evidence(
        self,
        embeddings: np.ndarray,
        texts: Sequence[str],
        questions: Sequence[str | None],
        codebook: Codebook,
        pair_model: PairModel,
    ) -> np.ndarray:
        """Per stance value, the best pair probability among the codes of that stance."""
        codes, _ = self.code_vectors(codebook)
        stance_ids = codebook.stance_ids
        candidates = [
            [codebook.theme_ids.index(t.id) for t in codebook.themes_for(q)] for q in questions
        ]
        words = [content_words(text) for text in texts]
        features, pairs = pair_features(embeddings, words, candidates, codes)
        probabilities = pair_model.probabilities(features)
        evidence = np.zeros((len(texts), len(stance_ids) + 1))
        categories = [t.category for t in codebook.themes]
        for (row, code_position), probability in zip(pairs, probabilities, strict=True):
            category = categories[code_position]
            if category in stance_ids:
                column = stance_ids.index(category)
                evidence[row, column] = max(evidence[row, column], probability)
        top_two = np.sort(evidence[:, : len(stance_ids)], axis=1)
        if len(stance_ids) >= 2:
            evidence[:, -1] = top_two[:, -1] - top_two[:, -2]
        return evidence * 4.0  # on the scale of the other features

    def propose(self, responses: Sequence[Response], codebook: Codebook) -> list[ProposalResult]:
        """Propose labels for ``responses`` (one result per response, same order)."""
        if not responses:
            return []
        state = self.state
        texts = [response.text or "" for response in responses]
        questions = [response.question for response in responses]
        # Trained relevance: the reviewers' model, else only the plain rules (their labels
        # gave no pattern beyond blanks and "did not answer" to learn); zero-shot relevance
        # adds cross-references and off-topic matching (see _zero_shot_relevance).
        trained_relevance = state is not None and self._mode("relevance") == "trained"
        reasons = [non_answer_reason(text, soft=not trained_relevance) for text in texts]
        theme_mode = self._mode("themes")
        if state is None or theme_mode not in ("trained", "stacked") or (
            theme_mode == "trained" and state.pair_model is None
        ):
            # Zero-shot matches each sentence on its own: encoded alone, a sentence's vector
            # is more specific than its span of the whole response's pass.
            embeddings = self.embed(texts)
            sentence_vectors = self.separate_sentence_vectors(texts)
        else:
            embeddings, sentence_vectors = self.embed_sentences(texts)
        codes, per_code = self.code_vectors(codebook)
        count = len(responses)

        scored = self._score_themes(
            texts, questions, embeddings, codebook, codes, per_code, sentence_vectors
        )
        candidates, similarity, best_proto = scored.candidates, scored.similarity, scored.best_proto
        probabilities, assigned, source = scored.probabilities, scored.assigned, scored.source

        # Relevance.
        relevant = np.ones(count, dtype=bool)
        relevance_confidence = np.full(count, 0.8)
        if trained_relevance:
            if state is not None and state.relevance_model is not None:
                model_probs = state.relevance_model.probabilities(texts, embeddings, questions)
                true_column = state.relevance_model.classes.index("True")
                relevant = model_probs[:, true_column] >= 0.5
                relevance_confidence = np.maximum(
                    model_probs[:, true_column], 1 - model_probs[:, true_column]
                )
        else:
            self._zero_shot_relevance(
                embeddings, similarity, codebook, reasons, texts, questions, candidates
            )
        for row, reason in enumerate(reasons):
            if reason is not None:
                relevant[row] = False
                relevance_confidence[row] = 0.99

        # Stance.
        stance_ids = codebook.stance_ids
        stances: list[str | None] = [None] * count
        stance_confidence = np.zeros(count)
        if stance_ids:
            stance_probs, stance_classes = self._stance_probabilities(
                texts, embeddings, questions, codebook, scored.kernel_scores
            )
            best = stance_probs.argmax(axis=1)
            for row in range(count):
                stances[row] = stance_classes[best[row]]
                stance_confidence[row] = stance_probs[row, best[row]]
            stance_mode = self._mode("stance")
            mapping = stance_mapping(codebook)
            trained_stance = state is not None and state.stance_model is not None
            counts = (getattr(state, "stance_counts", None) or {}) if state is not None else {}
            for row, text in enumerate(texts):
                # Zero-shot similarity to stance descriptions is near chance; an explicit
                # opening ("Partly.", "Yes, but", "Not really") is the respondent's own
                # answer. With a trained model it wins when the gate chose so, and always
                # for a value reviewers gave too rarely for the model to learn.
                cue = stance_cue(text, stance_ids, mapping)
                if cue is None:
                    continue
                if (
                    not trained_stance
                    or stance_mode != "trained"
                    or counts.get(cue, 0) < MIN_STANCE_EXAMPLES
                ):
                    stances[row] = cue
                    stance_confidence[row] = max(float(stance_confidence[row]), 0.7)

        # A question that asks for ideas, not a view (has_stance: false), gets no stance.
        for row, question in enumerate(questions):
            if stance_ids and not codebook.has_stance(question):
                stances[row] = None
                stance_confidence[row] = 1.0
        # An answer that only gives a stance ("Yes", "Strongly resonates") raises no theme.
        bare = [stance_only(text) for text in texts]

        # The reviewed response most like each one (named in rationales).
        nearest = self._nearest_training(embeddings)

        results = []
        version = self.model_version
        quoted: list[tuple[ThemeAssignment, np.ndarray]] = []
        for row, response in enumerate(responses):
            themes: list[ThemeAssignment] = []
            if relevant[row] and not bare[row]:
                chosen = np.flatnonzero(assigned[row])
                chosen = chosen[np.argsort(-probabilities[row, chosen])]
                for code in chosen:
                    evidence = self._evidence(texts[row], sentence_vectors[row], per_code[code])
                    themes.append(
                        ThemeAssignment(
                            code=codes.ids[code],
                            evidence=evidence,
                            confidence=float(np.clip(probabilities[row, code], 0.0, 1.0)),
                        )
                    )
                    quoted.append((themes[-1], per_code[code]))
            here = candidates[row]
            code_confidence = (
                float(np.min(np.maximum(probabilities[row, here], 1 - probabilities[row, here])))
                if here and relevant[row]
                else 1.0
            )
            overall = min(
                float(relevance_confidence[row]),
                float(stance_confidence[row]) if stance_ids and relevant[row] else 1.0,
                code_confidence,
            )
            proposal = Proposal(
                response_id=response.id,
                question=response.question,
                stance=stances[row] if relevant[row] else None,
                stance_confidence=float(np.clip(stance_confidence[row], 0, 1))
                if stance_ids and relevant[row] and stances[row] is not None
                else None,
                relevant=bool(relevant[row]),
                relevance_reason=reasons[row] if not relevant[row] else None,
                relevance_confidence=float(np.clip(relevance_confidence[row], 0, 1)),
                themes=themes,
                rationale=(
                    "The answer only gives a stance; it raises no theme."
                    if bare[row]
                    else self._rationale(
                        row, themes, codebook, similarity, best_proto, source, nearest
                    )
                )
                if relevant[row]
                else f"Not relevant: {reasons[row] or 'classified as not relevant'}.",
                confidence=float(np.clip(overall, 0.0, 1.0)),
            )
            results.append(
                ProposalResult(
                    response_id=response.id,
                    proposal=proposal,
                    model_version=version,
                    params={"model": self.model},
                )
            )
        self._focus_evidence(quoted)
        return results

    def _focus_evidence(self, quoted: Sequence[tuple[ThemeAssignment, np.ndarray]]) -> None:
        """Narrow each long evidence sentence to the clause that carries its code.

        A reviewer checks a theme faster against "the contract and the spec were almost
        irrelevant" than against a 40-word sentence. A clause replaces the sentence only
        when it matches the code's prototypes at least as well as the whole sentence does
        (both encoded on their own), so a sentence whose meaning is spread over its clauses
        stays whole. Short sentences are never cut (``LONG_SENTENCE_WORDS``).
        """
        work = []
        for assignment, prototypes in quoted:
            sentence = assignment.evidence
            spans = clause_spans(sentence) if sentence else []
            if sentence and spans:
                work.append((assignment, prototypes, sentence, [sentence[b:e] for b, e in spans]))
        if not work:
            return
        # One encoder call for every sentence and clause (the embedding cache keeps repeats free).
        self.embed([text for _, _, sentence, clauses in work for text in (sentence, *clauses)])
        for assignment, prototypes, sentence, clauses in work:
            vectors = self.embed([sentence, *clauses])
            scores = (vectors @ prototypes.T).max(axis=1)
            best = int(scores[1:].argmax())
            if scores[1 + best] >= scores[0]:
                assignment.evidence = clauses[best]

    def _zero_shot_relevance(
        self,
        embeddings: np.ndarray,
        similarity: np.ndarray,
        codebook: Codebook,
        reasons: list[str | None],
        texts: Sequence[str] = (),
        questions: Sequence[str | None] = (),
        candidates: Sequence[Sequence[int]] = (),
    ) -> None:
        """Rule out responses that are about something else (no trained relevance model).

        A response is off-topic when it is closer (by OFF_TOPIC_MARGIN) to an off-topic
        prototype — the codebook's ``relevance.not_relevant_examples`` and the built-in
        workshop chatter (logistics, technical trouble, test messages, thanks) — than to its
        own question and to every code that applies to it. Answers that give a view ("Yes",
        "Not really - ...") are never ruled out: a bare stance is a relevant answer.
        """
        if not len(embeddings):
            return
        examples = list(codebook.relevance.not_relevant_examples) if codebook.relevance else []
        prototypes = list(dict.fromkeys([*examples, *OFF_TOPIC_CHATTER]))
        off_topic = embeddings @ self.embed(prototypes).T
        question_vectors = self.embed([codebook.question_text(q) or "" for q in questions])
        to_question = (embeddings * question_vectors).sum(axis=1)
        stance_ids = codebook.stance_ids
        mapping = stance_mapping(codebook)
        for row in range(len(embeddings)):
            if reasons[row] is not None:
                continue
            text = texts[row] if row < len(texts) else ""
            if stance_only(text) or stance_cue(text, stance_ids, mapping) is not None:
                continue
            here = list(candidates[row]) if row < len(candidates) else []
            on_topic = max(
                float(to_question[row]) if questions[row] else -1.0,
                float(similarity[row, here].max()) if here else -1.0,
            )
            best = int(np.argmax(off_topic[row]))
            if float(off_topic[row, best]) > on_topic + OFF_TOPIC_MARGIN:
                reasons[row] = f"off-topic, like {prototypes[best][:40]!r}"

    def _score_themes(
        self,
        texts: Sequence[str],
        questions: Sequence[str | None],
        embeddings: np.ndarray,
        codebook: Codebook,
        codes: CodeVectors,
        per_code: list[np.ndarray],
        sentence_vectors: list[np.ndarray] | None = None,
    ) -> ThemeScores:
        """Probability and decision for every (response, code); codes not applying are 0."""
        state = self.state
        count = len(texts)
        n_codes = len(codes.ids)
        candidates = [
            [position for position, t in enumerate(codebook.themes) if t.applies_to(q)]
            for q in questions
        ]
        applicable = np.zeros((count, n_codes), dtype=bool)
        for row, here in enumerate(candidates):
            applicable[row, here] = True

        # Similarity of each response to each code's best prototype (for rationales and,
        # blended with the whole-text match and the question prior, for zero-shot).
        zero_shot_scores: np.ndarray | None = None
        mode = self._mode("themes")
        if mode == "stacked":
            if sentence_vectors is None:
                _, sentence_vectors = self.embed_sentences(texts)
            # As _zero_shot_matrix, keeping the sentence-level similarity for relevance.
            zero_shot_scores, similarity, best_proto = self._zero_shot_similarity(
                embeddings, per_code, codes, codebook, sentence_vectors
            )
            zero_shot_scores = zero_shot_scores + self._prior_rows(texts, questions, codebook)
        elif state is None or state.pair_model is None or mode != "trained":
            # Zero-shot: a response that raises several topics matches each one best in
            # the sentence that speaks of it.
            if sentence_vectors is None:
                sentence_vectors = self.separate_sentence_vectors(texts)
            matched = per_code
            if mode in ("augmented", "hybrid") and state is not None:
                # Reviewed answers join the codebook's examples of the codes they carry.
                extra = getattr(state, "code_examples", None) or {}
                matched = [
                    np.vstack([vectors, self.embed(extra[code])]) if extra.get(code) else vectors
                    for code, vectors in zip(codes.ids, per_code, strict=True)
                ]
            zero_shot_scores, similarity, best_proto = self._zero_shot_similarity(
                embeddings, matched, codes, codebook, sentence_vectors
            )

            zero_shot_scores = zero_shot_scores + self._prior_rows(texts, questions, codebook)
        else:
            similarity, best_proto = prototype_similarity(embeddings, per_code, codes.n_head)

        probabilities = np.zeros((count, n_codes))
        assigned = np.zeros((count, n_codes), dtype=bool)
        source = np.full((count, n_codes), "", dtype=object)
        covered = np.zeros(n_codes, dtype=bool)
        kernel_raw: np.ndarray | None = None
        if state is not None and state.theme_model is not None:
            model = state.theme_model
            kernel_raw = model.scores(texts, embeddings, questions)
            # Hybrid and trained modes use it; zero-shot mode keeps it for stance only.
            if mode in ("trained", "hybrid"):
                columns = [
                    (position, codes.ids.index(code))
                    for position, code in enumerate(model.labels)
                    if code in codes.ids
                ]
                if columns:
                    raw = kernel_raw
                    calibrated = model.probabilities(raw)
                    assert model.thresholds is not None
                    for model_column, code_column in columns:
                        probabilities[:, code_column] = calibrated[:, model_column]
                        assigned[:, code_column] = raw[:, model_column] > model.thresholds[model_column]
                        source[:, code_column] = "model"
                        covered[code_column] = True
        if mode == "stacked" and state is not None and state.stack_model is not None:
            stack = state.stack_model
            assert zero_shot_scores is not None
            margins, kernel_covers = self._kernel_margins(state.theme_model, kernel_raw, codebook)
            if kernel_raw is None:
                margins = np.zeros((count, n_codes))
            features = stack.features(
                zero_shot_scores, applicable, embeddings, questions, margins, kernel_covers
            )
            probabilities = stack.probabilities(features, applicable)
            assigned = probabilities >= stack.threshold
            # As zero-shot does, an answer gets at least its best code (bare stances and
            # irrelevant answers lose their themes later).
            empty = applicable.any(axis=1) & ~assigned.any(axis=1)
            best = np.where(applicable, probabilities, -1.0).argmax(axis=1)
            assigned[np.flatnonzero(empty), best[empty]] = True
            source = np.where(applicable, "stacked", source)
            covered[:] = True
        uncovered = [[code for code in here if not covered[code]] for here in candidates]
        if (
            state is not None
            and state.pair_model is not None
            and mode == "trained"
            and any(uncovered)
        ):
            words = [content_words(text) for text in texts]
            # Features against every candidate, as in training; only uncovered pairs kept.
            features, pairs = pair_features(embeddings, words, candidates, codes, keep=uncovered)
            pair_probabilities = state.pair_model.probabilities(features)
            pair_probabilities = self._rare_code_prior(pair_probabilities, pairs, codes)
            for (row, code), probability in zip(pairs, pair_probabilities, strict=True):
                probabilities[row, code] = probability
                assigned[row, code] = probability >= state.pair_model.threshold
                source[row, code] = "pair"
        elif any(uncovered) and zero_shot_scores is not None:
            # Zero-shot: the best code, and any other within ZERO_SHOT_SPREAD standard
            # deviations of it (the spread of this response's own candidate scores).
            # Decided over every applicable code, then used only where no trained model
            # covers the code (hybrid): the best code may be one the kernel model decides.
            open_codes = applicable & ~covered[None, :]
            masked = np.where(applicable, zero_shot_scores, np.nan)
            has_any: np.ndarray = np.asarray(applicable.any(axis=1), dtype=bool)
            top = np.where(has_any, np.nanmax(np.where(has_any[:, None], masked, 0.0), axis=1), 0.0)
            spread = np.where(
                has_any, np.nanstd(np.where(has_any[:, None], masked, 0.0), axis=1), 0.0
            )
            cut = (top - ZERO_SHOT_SPREAD * spread)[:, None]
            zero_shot = open_codes & (np.nan_to_num(masked, nan=-np.inf) >= cut)
            assigned |= zero_shot
            # One scale for every response, so that scores rank answers against each other
            # (key-point matching ranks all of a motion's pairs): scaled by each response's
            # own spread they were not comparable (ArgKP zero-shot mAP strict 0.545 -> 0.733).
            zs_prob = sigmoid((np.nan_to_num(masked, nan=-1e3) - cut) * 25.0 + 0.5)
            probabilities = np.where(open_codes, zs_prob, probabilities)
            source = np.where(open_codes, "zero-shot", source)
        assigned &= applicable
        return ThemeScores(
            candidates, similarity, best_proto, probabilities, assigned, source, kernel_raw
        )

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

    def code_scores(
        self, responses: Sequence[Response], codebook: Codebook
    ) -> list[dict[str, float]]:
        """For each response, the probability of every code that applies to its question."""
        texts = [response.text or "" for response in responses]
        questions = [response.question for response in responses]
        codes, per_code = self.code_vectors(codebook)
        scored = self._score_themes(texts, questions, self.embed(texts), codebook, codes, per_code)
        return [
            {codes.ids[code]: float(scored.probabilities[row, code]) for code in here}
            for row, here in enumerate(scored.candidates)
        ]

    def _stance_probabilities(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray,
        questions: Sequence[str | None],
        codebook: Codebook,
        kernel_scores: np.ndarray | None = None,
    ) -> tuple[np.ndarray, list[str]]:
        state = self.state
        stance_ids = codebook.stance_ids
        model = state.stance_model if state is not None else None
        if self._mode("stance") == "zero-shot":
            model = None
        if model is not None and set(model.classes) <= set(stance_ids):
            if model.model is None:  # one class only in training
                return np.ones((len(texts), 1)), list(model.classes)
            extra = None
            if state is not None and state.stance_uses_themes and state.pair_model is not None:
                extra = self._stance_evidence(
                    embeddings, texts, questions, codebook, state.pair_model
                )
            probabilities = model.probabilities(texts, embeddings, questions, extra)
            weight = state.params.get("stance_kernel_weight", 0.0) if state else 0.0
            unseen = (
                np.array([str(q) not in state.stance_questions for q in questions])
                if state
                else np.zeros(len(texts), bool)
            )
            if state is not None and state.theme_model is not None and kernel_scores is not None:
                # Stance is also a column set of the kernel model; blend the two views.
                labels = state.theme_model.labels
                columns = [
                    labels.index(STANCE_PREFIX + value) if STANCE_PREFIX + value in labels else -1
                    for value in model.classes
                ]
                if weight > 0 and min(columns) >= 0:
                    kernel = np.clip(kernel_scores[:, columns], 0.0, None) + 1e-3
                    kernel /= kernel.sum(axis=1, keepdims=True)
                    seen = ~unseen
                    probabilities[seen] = (1 - weight) * probabilities[seen] + weight * kernel[seen]
            return probabilities, list(model.classes)
        # Zero-shot: similarity of "question + answer" to each stance value's description.
        assert codebook.stance is not None
        descriptions = [
            f"{value.label or value.id.replace('_', ' ')}. {value.description}".strip()
            for value in codebook.stance.values
        ]
        value_vectors = self.embed(descriptions)
        framed = [
            f"{codebook.question_text(q)} {text}".strip()
            for q, text in zip(questions, texts, strict=True)
        ]
        scores = self.embed(framed) @ value_vectors.T
        probabilities = np.exp(scores * 10)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return probabilities, stance_ids

    def _evidence(self, text: str, vectors: np.ndarray, prototypes: np.ndarray) -> str | None:
        """The sentence of the response most similar to the code's prototypes."""
        if not text.strip():
            return None
        if len(vectors) <= 1:
            return text.strip()
        sentences = split_sentences(text)
        scores = (vectors @ prototypes.T).max(axis=1)
        return sentences[int(scores.argmax())]

    def _nearest_training(self, embeddings: np.ndarray) -> list[str | None]:
        """Per row, the most similar reviewed response's text (None without a model)."""
        state = self.state
        if state is None or state.theme_model is None or not state.train_texts:
            return [None] * len(embeddings)
        best = state.theme_model.nearest(embeddings, [None] * len(embeddings), count=1)[:, 0]
        texts = state.train_texts
        return [texts[i] if i < len(texts) else None for i in best]

    def _rationale(
        self,
        row: int,
        themes: list[ThemeAssignment],
        codebook: Codebook,
        similarity: np.ndarray,
        best_proto: np.ndarray,
        source: np.ndarray,
        nearest: list[str | None],
    ) -> str:
        if not themes:
            return "No code matched closely enough."
        parts = []
        for assignment in themes[:3]:
            code = codebook.theme_ids.index(assignment.code)
            theme = codebook.themes[code]
            proto = int(best_proto[row, code])
            key = (theme.id, theme.label, theme.definition, *theme.include, *theme.examples)
            prototypes = self._prototype_texts.get(key)
            if prototypes is None:
                prototypes = self._prototype_texts[key] = theme_prototypes(theme)
            what = (
                "definition"
                if proto == 0
                else "label"
                if proto == 1
                else f"example {prototypes[proto][:60]!r}"
                if proto < len(prototypes)
                else "definition"
            )
            how = {
                "model": "learned from reviewed responses",
                "pair": "matched to the code text",
                "stacked": "learned from reviewed responses and the code text",
            }.get(str(source[row, code]), "zero-shot")
            parts.append(
                f"{theme.label}: closest to its {what} (similarity {similarity[row, code]:.2f}; {how})"
            )
        rationale = "; ".join(parts)
        if nearest[row] is not None:
            rationale += f"; similar to reviewed responses: {str(nearest[row])[:80]!r}"
        return rationale + "."
