"""The labels of a fine-tuning run as arrays: tokenised answers, label vocabularies, length
buckets and the run's identity."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from coder.embedded.finetune_config import LENGTH_STEP, FineTuneConfig
from coder.embedded.training import LabelledExample, hash_examples


@dataclass
class EncodedLabels:
    """The labelled answers as token ids and label arrays, one row per answer."""

    ids: list[np.ndarray]
    themes: np.ndarray  # (n, T) 0/1
    theme_mask: np.ndarray  # (n, T) 1 where the label counts
    stance: np.ndarray  # (n,) class index or -1
    relevance: np.ndarray  # (n,) 1 relevant, 0 not, -1 unknown
    #: segment ids of (question, answer) pairs (1 on the answer's tokens); None: single texts
    type_ids: list[np.ndarray] | None = None


def load_tokenizer(max_tokens: int) -> Any:
    """The MiniLM tokenizer, truncating at ``max_tokens``, without padding."""
    from tokenizers import Tokenizer

    from coder.embedded.encoder import default_tokenizer_path

    tokenizer = Tokenizer.from_file(str(default_tokenizer_path()))
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.no_padding()
    return tokenizer


def label_vocabulary(examples: Sequence[LabelledExample]) -> dict[str, list[str]]:
    """Theme codes and stance values with at least 2 examples; relevance if both seen."""
    theme_counts: dict[str, int] = {}
    stance_counts: dict[str, int] = {}
    relevance: set[bool] = set()
    for example in examples:
        for code in set(example.themes):
            theme_counts[code] = theme_counts.get(code, 0) + 1
        if example.stance is not None:
            stance_counts[example.stance] = stance_counts.get(example.stance, 0) + 1
        if example.relevant is not None:
            relevance.add(bool(example.relevant))
    return {
        "themes": sorted(code for code, count in theme_counts.items() if count >= 2),
        "stance": sorted(value for value, count in stance_counts.items() if count >= 2)
        if len([v for v in stance_counts.values() if v >= 2]) >= 2
        else [],
        "relevance": ["relevant"] if len(relevance) == 2 else [],
    }


def encode_labels(
    examples: Sequence[LabelledExample],
    vocabulary: dict[str, list[str]],
    tokenizer: Any,
    first_segments: Sequence[str] | None = None,
) -> EncodedLabels:
    """Token ids and label arrays of ``examples`` over the run's label ``vocabulary``.

    With ``first_segments`` (e.g. each answer's question text) every row is the pair
    (segment, answer) in the tokenizer's pair encoding, with its segment ids.
    """
    themes = vocabulary["themes"]
    index = {code: position for position, code in enumerate(themes)}
    stance_index = {value: position for position, value in enumerate(vocabulary["stance"])}
    count = len(examples)
    theme_matrix = np.zeros((count, len(themes)), np.float32)
    theme_mask = np.ones((count, len(themes)), np.float32)
    stance = np.full(count, -1, np.int32)
    relevance = np.full(count, -1, np.int32)
    for row, example in enumerate(examples):
        for code in example.themes:
            if code in index:
                theme_matrix[row, index[code]] = 1.0
        for code in example.uncertain_themes:
            if code in index:
                theme_mask[row, index[code]] = 0.0
        if example.stance in stance_index:
            stance[row] = stance_index[example.stance]
        if vocabulary["relevance"] and example.relevant is not None:
            relevance[row] = int(bool(example.relevant))
    texts = [example.text or "" for example in examples]
    if first_segments is None:
        encodings = tokenizer.encode_batch(texts)
    else:
        encodings = tokenizer.encode_batch(list(zip(first_segments, texts, strict=True)))
    ids = [np.asarray(encoding.ids, np.int32) for encoding in encodings]
    type_ids = (
        None
        if first_segments is None
        else [np.asarray(encoding.type_ids, np.int32) for encoding in encodings]
    )
    return EncodedLabels(ids, theme_matrix, theme_mask, stance, relevance, type_ids)


def data_hash(
    examples: Sequence[LabelledExample],
    config: FineTuneConfig,
    first_segments: Sequence[str] | None = None,
    unseen_rows: np.ndarray | None = None,
) -> str:
    """Identity of a run: its examples, settings and the rows kept unseen (a checkpoint
    resumes only the same run)."""
    digest = hashlib.sha256()
    hash_examples(digest, examples, with_question=False)
    if first_segments is not None:
        digest.update(json.dumps(list(first_segments), ensure_ascii=False).encode("utf-8"))
    if unseen_rows is not None and len(unseen_rows):
        rows = sorted({int(row) for row in unseen_rows})
        digest.update(json.dumps({"unseen_rows": rows}).encode("utf-8"))
    digest.update(json.dumps(config.identity(), sort_keys=True).encode("utf-8"))
    return digest.hexdigest()[:16]


def padded(length: int, max_tokens: int) -> int:
    """The padded length of a batch whose longest answer has ``length`` tokens."""
    return min(max_tokens, -(-max(length, 1) // LENGTH_STEP) * LENGTH_STEP)


def length_batches(
    rows: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None
) -> list[np.ndarray]:
    """Batches of rows of similar length (less padding), in a seeded random order."""
    order = rng.permutation(rows) if rng is not None else np.asarray(rows)
    chunk = batch_size * 20
    batches: list[np.ndarray] = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches
