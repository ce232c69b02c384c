"""``coder train --fine-tune`` and ``coder eval --fine-tune``: fine-tune, store, then train heads.

The fine-tuned encoder is stored in the project (``encoders`` table, ONNX bytes), becomes the
project's encoder (:func:`coder.embedded.encoder.get_encoder` picks it for new models and
zero-shot proposals), and the usual classifier (kernel, pair, stance and relevance models and
the gate) is trained on top of it with :func:`coder.embedded.retrain.retrain_and_repropose`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coder.embedded.finetune import FineTuneConfig, FineTuneResult, ProgressCallback, fine_tune
from coder.embedded.stance_pairs import STANCE_BASE, PairStanceModel, train_and_store_pairs
from coder.embedded.training import LabelledExample, examples_from_gold_file, examples_from_store
from coder.errors import BackendError
from coder.store import Store


def checkpoint_folder(store: Store) -> Path:
    """Where a project's fine-tuning checkpoints go: ``<project file>.finetune/`` beside it."""
    return store.path.with_name(store.path.name + ".finetune")


def encoder_from_result(result: FineTuneResult) -> Any:
    """An onnxruntime encoder for a fine-tuning result (no JAX involved)."""
    from coder.embedded.encoder import MiniLMEncoder

    return MiniLMEncoder.from_onnx_bytes(
        result.onnx_bytes,
        name=result.name,
        expected_sha256=result.sha256,
        per_text=result.quantized,
    )


@dataclass
class FineTuneSummary:
    """What ``coder train --fine-tune`` did: the encoder, and the classifier trained on it."""

    encoder: FineTuneResult
    #: the classifier retrained on the new encoder (a RetrainSummary)
    retrain: Any
    #: the stance cross-encoder, when the labels carry stances (see stance_pairs.py)
    stance_pairs: PairStanceModel | None = None
    #: the theme cross-encoder (``--theme-pairs``), when there were enough labels
    theme_pairs: PairStanceModel | None = None


def fine_tune_project(
    store: Store,
    codebook_version: int | None = None,
    *,
    from_file: str | Path | None = None,
    split: str | None = None,
    config: FineTuneConfig | None = None,
    progress: ProgressCallback | None = None,
    repropose: bool = True,
    stance_pairs: bool = False,
    theme_pairs: bool = False,
) -> FineTuneSummary:
    """Fine-tune on the project's labels (or a gold file), store the encoder, retrain on it.

    A run stopped by its time budget uses the best weights so far and leaves a checkpoint:
    the same command again continues training from it. With ``stance_pairs`` a stance
    cross-encoder is fine-tuned too (when the labels carry stances) and gated in by fit().
    """
    from coder.embedded.classifier import LocalClassifier
    from coder.embedded.retrain import retrain_and_repropose
    from coder.embedded.theme_pairs_project import theme_pairs_for

    examples: list[LabelledExample]
    if from_file is not None:
        examples = examples_from_gold_file(from_file, split=split)
    else:
        examples = examples_from_store(store)
    if not examples:
        raise BackendError(
            f"{from_file or store.path}: no labelled examples to fine-tune on"
            + ("" if from_file else ": review some responses first")
        )
    result = fine_tune(examples, config, checkpoint_folder(store), progress)
    pairs = (
        stance_pairs_for(store, codebook_version, examples, config, progress)
        if stance_pairs
        else None
    )
    themes = (
        theme_pairs_for(store, codebook_version, examples, config, progress)
        if theme_pairs
        else None
    )
    store.save_encoder(
        result.name,
        result.onnx_bytes,
        sha256=result.sha256,
        quantized=result.quantized,
        base=str(result.params.get("base")),
        params=result.params,
        metrics=result.metrics,
    )
    classifier = LocalClassifier(store, encoder=encoder_from_result(result), use_stored_model=False)
    classifier.stance_pairs = pairs
    classifier.theme_pairs = themes
    summary = retrain_and_repropose(
        store,
        codebook_version,
        from_file=from_file,
        split=split,
        repropose=repropose,
        classifier=classifier,
    )
    return FineTuneSummary(result, summary, pairs, themes)


def stance_pairs_for(
    store: Store,
    codebook_version: int | None,
    examples: Sequence[LabelledExample],
    config: FineTuneConfig | None,
    progress: ProgressCallback | None,
) -> PairStanceModel | None:
    """Fine-tune and store the stance cross-encoder when the labels carry stances.

    Stored before the sentence encoder, so the project's latest encoder stays a sentence
    encoder; resumable from ``<project file>.finetune-stance/``.
    """
    from coder.embedded.stance_pairs_train import train_stance_pairs

    def train(codebook: Any, folder: Path) -> PairStanceModel | None:
        if not codebook.stance_ids:
            return None
        return train_stance_pairs(examples, codebook, config, folder, progress)

    return train_and_store_pairs(store, codebook_version, ".finetune-stance", train, STANCE_BASE)


def fine_tuned_encoder(
    examples: Sequence[LabelledExample],
    config: FineTuneConfig | None = None,
    progress: ProgressCallback | None = None,
    checkpoint_dir: Path | None = None,
) -> tuple[Any, FineTuneResult]:
    """(encoder, result) fine-tuned on ``examples``, for ``coder eval --fine-tune``."""
    result = fine_tune(examples, config, checkpoint_dir, progress)
    return encoder_from_result(result), result


def fine_tuned_stance_pairs(
    examples: Sequence[LabelledExample],
    codebook: Any,
    config: FineTuneConfig | None = None,
    progress: ProgressCallback | None = None,
) -> PairStanceModel | None:
    """The stance cross-encoder for ``coder eval --fine-tune`` (None: no stances to learn)."""
    from coder.embedded.stance_pairs_train import train_stance_pairs

    if not codebook.stance_ids:
        return None
    return train_stance_pairs(examples, codebook, config, None, progress)
