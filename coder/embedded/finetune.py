"""Fine-tune the MiniLM encoder on reviewed labels (the optional ``finetune`` extra: JAX + optax).

``coder train --fine-tune`` runs :func:`fine_tune`: the float weights are read out of the
shipped ONNX graph (:mod:`finetune_graph`), the upper transformer layers are trained in JAX
(:mod:`finetune_model`) with a cosine classification head per field — themes (multi-label,
binary cross-entropy; codes humans were split on are left out), stance (softmax) and relevance
— on the pooled, normalised sentence vector the classifier uses, so answers that share a code
move together in exactly the space the kernel and pair models read. The lower layers are
frozen and their outputs computed once (training the top layers costs a third of training
all six; measured in benchmarks/bench_finetune.py). A seeded part of the labels is held back:
training stops when its loss has not improved for ``patience`` evaluations, when the epochs
are done or when the time budget is spent, and the best weights so far are kept.

Checkpoints (arrays as ``.npz`` read with ``allow_pickle=False``, plus a JSON file; never a
pickle) are written to a folder next to the project, so an interrupted or time-boxed run
continues where it stopped; a run with other data or settings starts afresh. The result is
written back into the ONNX graph, quantised to int8 as the default encoder is when the
vectors stay within :data:`INT8_MIN_COSINE` of the float model's, and named
``minilm-l6-ft-<sha256[:12]>``; inference always runs on onnxruntime, without JAX.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coder.embedded.finetune_checkpoint import load_checkpoint, save_checkpoint
from coder.embedded.finetune_config import (
    HEAD_SCALE,
    INSTALL_COMMAND,
    INSTALL_COMMAND_SOURCE,
    INT8_MIN_COSINE,
    LENGTH_STEP,
    FineTuneConfig,
    FineTuneResult,
    FineTuneUnavailable,
    ProgressCallback,
    config_from,
    require_finetune,
)
from coder.embedded.finetune_data import (
    data_hash,
    encode_labels,
    label_vocabulary,
    length_batches,
    load_tokenizer,
)
from coder.embedded.finetune_export import export_result
from coder.embedded.finetune_graph import LAYERS, load_float_graph
from coder.embedded.finetune_trainer import Trainer
from coder.embedded.training import LabelledExample
from coder.errors import CoderError

__all__ = [
    "HEAD_SCALE",
    "INSTALL_COMMAND",
    "INSTALL_COMMAND_SOURCE",
    "INT8_MIN_COSINE",
    "LENGTH_STEP",
    "FineTuneConfig",
    "FineTuneResult",
    "FineTuneUnavailable",
    "ProgressCallback",
    "config_from",
    "data_hash",
    "fine_tune",
    "label_vocabulary",
    "require_finetune",
]


def fine_tune(
    examples: Sequence[LabelledExample],
    config: FineTuneConfig | None = None,
    checkpoint_dir: Path | None = None,
    progress: ProgressCallback | None = None,
    first_segments: Sequence[str] | None = None,
    always_train: int = 0,
    unseen_rows: np.ndarray | None = None,
) -> FineTuneResult:
    """Fine-tune MiniLM on ``examples``; return the exported ONNX encoder.

    ``checkpoint_dir`` (e.g. ``<project>.finetune/``) makes the run resumable; ``progress``
    is called as ``progress(step, total_steps, info)`` after every step. With
    ``first_segments`` (one per example: its question's text) and ``config.pairs`` the run
    trains a stance cross-encoder on (question, answer) pairs (coder/embedded/stance_pairs.py).
    The last ``always_train`` examples (e.g. rows made from the codebook) are never held back.
    ``unseen_rows`` (indices among the others; every example must have text) are neither
    trained on nor used for early stopping: the caller's own test, e.g. whole questions
    (coder/embedded/stance_pairs_holdout.py).
    """
    require_finetune()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    config = config or FineTuneConfig()
    if not 1 <= config.trainable_layers <= LAYERS:
        raise CoderError(f"trainable layers must be 1..{LAYERS}, not {config.trainable_layers}")
    count = len(examples)
    if config.pairs:
        if first_segments is None or len(first_segments) != len(examples):
            raise CoderError("a pair fine-tune needs one question text per example")
        keep = [i for i, example in enumerate(examples) if (example.text or "").strip()]
        first_segments = [first_segments[i] for i in keep]
        examples = [examples[i] for i in keep]
    else:
        first_segments = None
        examples = [example for example in examples if (example.text or "").strip()]
    if len(examples) < 4:
        raise CoderError(
            f"fine-tuning needs labelled answers: {len(examples)} with text; review more first"
        )
    if unseen_rows is not None and len(examples) != count:
        raise CoderError("rows kept unseen need every example to have text")
    run = FineTuneRun(examples, config, checkpoint_dir, first_segments, always_train, unseen_rows)
    run.train(progress)
    best_step, best_loss = run.finish()
    return export_result(run, best_step, best_loss)


class FineTuneRun:
    """One fine-tuning run: its data split, trainer, parameters and checkpointed progress."""

    def __init__(
        self,
        examples: list[LabelledExample],
        config: FineTuneConfig,
        checkpoint_dir: Path | None,
        first_segments: Sequence[str] | None = None,
        always_train: int = 0,
        unseen_rows: np.ndarray | None = None,
    ) -> None:
        import jax

        self.jax = jax
        self.examples = examples
        self.config = config
        self.checkpoint_dir = checkpoint_dir
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()  # all threads: comparable on a shared machine
        self.first_segments = first_segments
        self.run = data_hash(examples, config, first_segments, unseen_rows)
        rng = np.random.default_rng(config.seed)
        labelled = len(examples) - always_train
        self.order = rng.permutation(labelled)
        self.unseen_rows = np.unique(
            np.asarray([] if unseen_rows is None else unseen_rows, np.int64)
        )
        if len(self.unseen_rows) and not (
            self.unseen_rows[0] >= 0 and self.unseen_rows[-1] < labelled
        ):
            raise CoderError(f"rows kept unseen must be among the {labelled} labelled examples")
        # Early stopping holds back a seeded share of the rows not kept unseen.
        order = self.order[~np.isin(self.order, self.unseen_rows)]
        held = int(round(config.holdout * len(order))) if len(order) >= 20 else 0
        self.holdout_rows = np.sort(order[:held])
        self.train_rows = np.sort(
            np.concatenate([order[held:], np.arange(labelled, len(examples))])
        )
        self.vocabulary = label_vocabulary([examples[i] for i in self.train_rows])
        if config.pairs:  # the cross-encoder learns stance only
            self.vocabulary = {"themes": [], "stance": self.vocabulary["stance"], "relevance": []}
        if not any(self.vocabulary.values()):
            raise CoderError("fine-tuning found no theme, stance or relevance with 2+ examples")
        self.graph = load_float_graph()
        data = encode_labels(
            examples, self.vocabulary, load_tokenizer(config.max_tokens), first_segments
        )
        self.trainer = trainer = Trainer(self.graph, config, data)
        self.batches_per_epoch = len(
            length_batches(self.train_rows, trainer.lengths, config.batch_size, None)
        )
        self.total_steps = self.batches_per_epoch * config.epochs
        self.optimizer = trainer.optimizer(self.total_steps)
        trainer.compile(self.optimizer)
        self.setup_seconds = time.perf_counter() - self.started
        self._start_or_resume()

    def _start_or_resume(self) -> None:
        """Fresh parameters and optimizer state, or those of this run's checkpoint."""
        jax, trainer = self.jax, self.trainer
        params = {
            k: trainer.jnp.asarray(v)
            for k, v in trainer.initial_parameters(self.train_rows).items()
        }
        opt_state = self.optimizer.init(params)
        leaves, treedef = jax.tree_util.tree_flatten(opt_state)
        self.meta: dict[str, Any] = {
            "run": self.run,
            "step": 0,
            "best_loss": None,
            "best_step": 0,
            "bad_evaluations": 0,
            "done": False,
            "history": [],
            "train_seconds": 0.0,
            "config": self.config.identity(),
            "vocabulary": self.vocabulary,
        }
        self.best = {k: np.asarray(v) for k, v in params.items()}
        self.resumed_from = 0
        found = (
            load_checkpoint(self.checkpoint_dir, self.run)
            if self.checkpoint_dir is not None
            else None
        )
        if found is not None:
            self.meta, saved, saved_best, saved_optimizer = found
            params = {k: trainer.jnp.asarray(saved[k]) for k in params}
            self.best = {k: saved_best[k] for k in params}
            restored = [saved_optimizer[f"leaf_{i:04d}"] for i in range(len(leaves))]
            opt_state = jax.tree_util.tree_unflatten(
                treedef,
                [
                    trainer.jnp.asarray(v, dtype=leaf.dtype)
                    for v, leaf in zip(restored, leaves, strict=True)
                ],
            )
            self.resumed_from = int(self.meta["step"])
        self.params, self.opt_state = params, opt_state
        self.step = int(self.meta["step"])

    def checkpoint(self) -> None:
        """Save the run's state (when it has a checkpoint folder)."""
        if self.checkpoint_dir is None:
            return
        meta = self.meta
        meta["step"] = self.step
        meta["train_seconds"] = round(
            self.seconds_before + time.perf_counter() - self.train_started, 2
        )
        save_checkpoint(
            self.checkpoint_dir,
            meta,
            self.params,
            self.best,
            self.jax.tree_util.tree_flatten(self.opt_state)[0],
        )

    def train(self, progress: ProgressCallback | None) -> None:
        """Run steps until the epochs are done, early stopping, or a step/time limit."""
        config, trainer, meta = self.config, self.trainer, self.meta
        per_epoch = self.batches_per_epoch
        self.evaluate_every = per_epoch if per_epoch < 40 else max(1, per_epoch // 2)
        self.train_started = time.perf_counter()
        self.seconds_before = float(meta.get("train_seconds") or 0.0)
        self.stopped = "done" if meta.get("done") else ""
        while not self.stopped and self.step < self.total_steps:
            epoch, position = divmod(self.step, per_epoch)
            epoch_batches = length_batches(
                self.train_rows,
                trainer.lengths,
                config.batch_size,
                np.random.default_rng([config.seed, epoch]),
            )
            hidden, mask, weights, labels = trainer.batch_inputs(epoch_batches[position])
            self.params, self.opt_state, loss = trainer.step(
                self.params, self.opt_state, hidden, mask, weights, labels
            )
            self.step += 1
            last_loss = float(loss)
            if self.step % self.evaluate_every == 0 or self.step == self.total_steps:
                self._evaluate(last_loss)
            if progress is not None:
                progress(
                    self.step,
                    self.total_steps,
                    {"loss": last_loss, "best_loss": meta["best_loss"], "epoch": epoch + 1},
                )
            elapsed = time.perf_counter() - self.train_started
            if config.max_steps is not None and self.step >= config.max_steps and not self.stopped:
                self.stopped = "max steps"
            elif (
                config.time_budget is not None
                and elapsed >= config.time_budget
                and not self.stopped
            ):
                self.stopped = "time budget"

    def _evaluate(self, last_loss: float) -> None:
        """Score the held-out rows, keep the best weights, stop early, checkpoint."""
        meta = self.meta
        rows = self.holdout_rows if len(self.holdout_rows) else self.train_rows
        score = self.trainer.evaluate(self.params, rows)
        meta["history"].append(
            {"step": self.step, "loss": round(last_loss, 5), "holdout_loss": round(score, 5)}
        )
        if meta["best_loss"] is None or score < meta["best_loss"] - 1e-4:
            meta["best_loss"], meta["best_step"], meta["bad_evaluations"] = score, self.step, 0
            self.best = {k: np.asarray(v) for k, v in self.params.items()}
        else:
            meta["bad_evaluations"] += 1
            if len(self.holdout_rows) and meta["bad_evaluations"] >= self.config.patience:
                self.stopped = "early stopping"
        self.checkpoint()

    def finish(self) -> tuple[int, float | None]:
        """Mark a complete run done and checkpoint; returns the best step and its loss."""
        meta = self.meta
        self.complete = self.stopped not in ("max steps", "time budget")
        if self.complete:
            meta["done"] = True
            if meta["best_loss"] is None:  # no evaluation happened (no steps left): keep the last
                self.best = {k: np.asarray(v) for k, v in self.params.items()}
        self.checkpoint()
        best_step, best_loss = meta["best_step"], meta["best_loss"]
        if not self.complete and self.step % self.evaluate_every:
            # Stopped between evaluations: the export may use the weights of this step, but the
            # checkpoint above keeps the schedule's own state, so a resumed run ends exactly where
            # an uninterrupted one would.
            rows = self.holdout_rows if len(self.holdout_rows) else self.train_rows
            score = self.trainer.evaluate(self.params, rows)
            if best_loss is None or score < best_loss - 1e-4:
                best_loss, best_step = score, self.step
                self.best = {k: np.asarray(v) for k, v in self.params.items()}
        self.train_seconds = time.perf_counter() - self.train_started
        return best_step, best_loss
