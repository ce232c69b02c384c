"""The MiniLM-L6 (BERT) forward pass in JAX, on the parameters of :mod:`finetune_graph`.

Written to compute what the ONNX graph computes (post-norm BERT, exact erf GELU, layer norm
eps 1e-12, padding keys masked out of attention) and to pool exactly like
``MiniLMEncoder._pool`` (mean over the attention mask, L2-normalised), so a fine-tuned model
exported back to ONNX is a drop-in encoder. Only imported when the ``finetune`` extra (JAX)
is installed.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from coder.embedded.finetune_graph import HEADS, HIDDEN

Params = dict[str, Any]
EPS = 1e-12


def layer_norm(x: Any, weight: Any, bias: Any) -> Any:
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(variance + EPS) * weight + bias


def embed(params: Params, input_ids: Any, type_ids: Any = None) -> Any:
    """Token + position + token-type embeddings, layer-normalised: (batch, len, 384).

    ``type_ids`` None means segment 0 everywhere (one text); a (question, answer) pair gives
    1 for the answer's tokens, as the ONNX graph's ``token_type_ids`` input does.
    """
    length = input_ids.shape[1]
    types = params["embeddings.token_type_embeddings.weight"]
    hidden = (
        params["embeddings.word_embeddings.weight"][input_ids]
        + params["embeddings.position_embeddings.weight"][None, :length]
        + (types[0][None, None] if type_ids is None else types[type_ids])
    )
    return layer_norm(
        hidden, params["embeddings.LayerNorm.weight"], params["embeddings.LayerNorm.bias"]
    )


def encoder_layer(params: Params, index: int, hidden: Any, mask: Any) -> Any:
    """One post-norm transformer layer; ``mask`` is (batch, len) with 1 for real tokens."""
    p = f"encoder.layer.{index}."
    batch, length, _ = hidden.shape
    size = HIDDEN // HEADS

    def heads(name: str) -> Any:
        projected = hidden @ params[p + f"attention.self.{name}.weight"]
        projected = projected + params[p + f"attention.self.{name}.bias"]
        return projected.reshape(batch, length, HEADS, size)

    query, key, value = heads("query"), heads("key"), heads("value")
    scores = jnp.einsum("bqhd,bkhd->bhqk", query, key) / jnp.sqrt(jnp.float32(size))
    # The graph adds -FLT_MAX to padded keys; a large finite number gives the same softmax
    # without NaN gradients.
    scores = scores + ((1.0 - mask[:, None, None, :]) * -1e9)
    weights = jax.nn.softmax(scores, axis=-1)
    context = jnp.einsum("bhqk,bkhd->bqhd", weights, value).reshape(batch, length, HIDDEN)
    attended = context @ params[p + "attention.output.dense.weight"]
    attended = attended + params[p + "attention.output.dense.bias"]
    hidden = layer_norm(
        attended + hidden,
        params[p + "attention.output.LayerNorm.weight"],
        params[p + "attention.output.LayerNorm.bias"],
    )
    inner = hidden @ params[p + "intermediate.dense.weight"] + params[p + "intermediate.dense.bias"]
    inner = jax.nn.gelu(inner, approximate=False)
    out = inner @ params[p + "output.dense.weight"] + params[p + "output.dense.bias"]
    return layer_norm(
        out + hidden, params[p + "output.LayerNorm.weight"], params[p + "output.LayerNorm.bias"]
    )


def run_layers(params: Params, hidden: Any, mask: Any, start: int, stop: int) -> Any:
    """Layers ``start`` .. ``stop - 1`` over ``hidden``."""
    for index in range(start, stop):
        hidden = encoder_layer(params, index, hidden, mask)
    return hidden


def pool(hidden: Any, mask: Any) -> Any:
    """Mean over real tokens, L2-normalised (as ``MiniLMEncoder._pool``)."""
    weights = mask[:, :, None]
    pooled = (hidden * weights).sum(1) / jnp.clip(weights.sum(1), 1e-9, None)
    # max(|x|^2, 1e-24) equals clip(|x|, 1e-12) but keeps a zero gradient for the all-padding
    # rows of a batch (linalg.norm's gradient at zero is NaN).
    squared = jnp.maximum((pooled**2).sum(1, keepdims=True), 1e-24)
    return pooled * jax.lax.rsqrt(squared)


def sentence_vectors(params: Params, input_ids: Any, mask: Any, layers: int = 6) -> Any:
    """Full forward pass: unit sentence vectors (batch, 384)."""
    mask = mask.astype(jnp.float32)
    return pool(run_layers(params, embed(params, input_ids), mask, 0, layers), mask)
