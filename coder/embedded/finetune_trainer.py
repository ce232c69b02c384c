"""The JAX side of fine-tuning: frozen layers computed once, the jitted loss and update,
evaluation and sentence vectors."""

from __future__ import annotations

from typing import Any

import numpy as np

from coder.embedded.finetune_config import HEAD_SCALE, FineTuneConfig
from coder.embedded.finetune_data import EncodedLabels, length_batches, padded
from coder.embedded.finetune_graph import LAYERS, FloatGraph

#: The largest weight theme_positive_weights gives a code's positives.
MAX_THEME_WEIGHT = 10.0


def theme_positive_weights(data: EncodedLabels, balance: float) -> np.ndarray:
    """Per theme code, the weight of its positive labels in the themes loss.

    ``(negatives / positives) ** balance``, between 1 and MAX_THEME_WEIGHT: 0 weighs every
    label alike; at 0.5 (the square root) a code with 100 positives among 4,000 answers
    weighs each positive about 6 times, a code with 20 positives 10 times (the cap), so the
    rare codes, which macro-F1 counts as much as common ones, shape the vectors too.
    Off by default: on NHS (bench_finetune's pool, heads with steadied thresholds) 0.5 lost
    on the holdout (themes micro / macro F1 0.759 / 0.571 against 0.768 / 0.590) and in
    cross-validation on the pool (micro -0.013, macro +0.002).
    """
    count = data.themes.shape[1]
    if not count or not balance:
        return np.ones(count, np.float32)
    positives = (data.themes * data.theme_mask).sum(0)
    negatives = ((1 - data.themes) * data.theme_mask).sum(0)
    ratio = negatives / np.maximum(positives, 1.0)
    return np.clip(ratio**balance, 1.0, MAX_THEME_WEIGHT).astype(np.float32)


class Trainer:
    """The JAX side: cached frozen layers, the jitted loss and update, evaluation."""

    def __init__(self, graph: FloatGraph, config: FineTuneConfig, data: EncodedLabels) -> None:
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
        self.theme_weights = theme_positive_weights(data, config.theme_balance)
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
        def lower(params: Any, ids: Any, types: Any, mask: Any) -> Any:
            return model.run_layers(params, model.embed(params, ids, types), mask, 0, first)

        hidden: list[np.ndarray] = [np.zeros(0, np.float32)] * len(self.data.ids)
        rows = np.arange(len(self.data.ids))
        type_ids = self.data.type_ids
        for batch in length_batches(rows, self.lengths, 64, None):
            ids, mask, _ = self._pad(batch, use_ids=True)
            # Segment ids of (question, answer) pairs; zeros (segment 0) for single texts.
            types = np.zeros_like(ids)
            if type_ids is not None:
                for position, row in enumerate(batch):
                    types[position, : self.lengths[row]] = type_ids[row]
            out = np.asarray(lower(frozen, ids, types, mask))
            for position, row in enumerate(batch):
                hidden[row] = out[position, : self.lengths[row]].copy()
        return hidden

    def _pad(self, batch: np.ndarray, *, use_ids: bool = False) -> tuple[Any, Any, Any]:
        """(inputs, mask, row weights) for a batch padded to a fixed size and length step."""
        size = self.config.batch_size if not use_ids else 64
        width = padded(int(self.lengths[batch].max()), self.config.max_tokens)
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
            # A rare code's positives weigh more (theme_positive_weights; 1 when off).
            per = per * (1.0 + (jnp.asarray(self.theme_weights) - 1.0) * themes)
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
        for batch in length_batches(rows, self.lengths, self.config.batch_size, None):
            hidden, mask, weights, labels = self.batch_inputs(batch)
            total += float(self.loss(params, hidden, mask, weights, labels)) * len(batch)
            count += len(batch)
        return total / max(count, 1)

    def vectors(self, params: dict[str, Any], rows: np.ndarray) -> np.ndarray:
        """Pooled unit vectors of ``rows`` with the given top-layer parameters."""
        forward = getattr(self, "forward", None) or self.jax.jit(self._forward)
        out = np.zeros((len(rows), self.base["embeddings.LayerNorm.bias"].shape[0]), np.float32)
        position = {row: i for i, row in enumerate(rows)}
        for batch in length_batches(np.asarray(rows), self.lengths, self.config.batch_size, None):
            hidden, mask, _ = self._pad(batch)
            result = np.asarray(forward(params, hidden, mask))
            for offset, row in enumerate(batch):
                out[position[row]] = result[offset]
        return out
