"""The embedding side of the embedded classifier: each text encoded once, sentence vectors,
and the codes' prototype vectors (cached per codebook content)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coder.embedded.encoder import Encoder, get_encoder
from coder.embedded.features import (
    content_words,
    parse_examples,
    sentence_spans,
    split_sentences,
    theme_prototypes,
)
from coder.embedded.models import CodeVectors, prototype_similarity
from schemas import Codebook

#: Zero-shot theme scores blend two views of a code: its prototypes one by one
#: (definition, label, include criteria, the best-matching examples) and all of its text
#: embedded as one ("label: definition examples"). The first wins on codebooks with many
#: examples (NHS), the second on short workshop codebooks; the blend holds up on both.
CONCAT_WEIGHT = 0.3


class EmbeddingCache:
    """Texts and codebooks embedded once per classifier (the caches may be shared)."""

    def __init__(self, encoder: Encoder | None = None, batch_size: int = 64) -> None:
        self._encoder = encoder
        self.batch_size = batch_size
        self._vectors: dict[str, np.ndarray] = {}
        #: per text, one vector per sentence (from the same encoder pass as the text's)
        self._sentence_vectors: dict[str, np.ndarray] = {}
        self._code_cache: dict[str, tuple[CodeVectors, list[np.ndarray]]] = {}
        self._concat_cache: dict[str, np.ndarray] = {}

    @property
    def encoder(self) -> Encoder:
        """The sentence encoder, loaded on first use."""
        if self._encoder is None:
            self._encoder = self._load_encoder()
        return self._encoder

    def _load_encoder(self) -> Encoder:
        """The encoder to use when none was given (the built-in one)."""
        return get_encoder(None)

    def share_caches(self, other: EmbeddingCache) -> None:
        """Let ``other`` use (and fill) this object's embedding caches."""
        other._vectors = self._vectors
        other._sentence_vectors = self._sentence_vectors
        other._code_cache = self._code_cache
        other._concat_cache = self._concat_cache

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

    def zero_shot_similarity(
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
