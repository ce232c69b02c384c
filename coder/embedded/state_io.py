"""Trained embedded states as JSON plus numpy arrays: a format that cannot run code on load.

A project file is shared by email and opened by whoever receives it, so what it stores must
be data, never code. A pickle is code (its ``__reduce__`` can call anything), so a trained
:class:`~coder.embedded.classifier.TrainedState` is stored as:

- a JSON document holding the structure and every plain value (dicts, lists, strings,
  numbers, sets as sorted lists, tuples), in which numeric arrays and sparse matrices are
  references (``{"__array__": "a3"}``) into
- a set of named numpy arrays, written with ``np.savez_compressed`` and read back with
  ``np.load(..., allow_pickle=False)`` (object arrays are refused by numpy itself).

Only the classes named in :data:`OBJECT_CLASSES` (the model dataclasses of
:mod:`coder.embedded.models`) and two scikit-learn estimators, rebuilt from their learned
attributes (:func:`vectorizer_parts`, :func:`logistic_parts`), can come back as objects;
anything else in the JSON is plain data. A new plain field added to ``TrainedState`` or to a
model dataclass is carried automatically (dataclass fields are walked); a field of a type
this module does not know fails loudly at save time, never silently at load time.

The blob is ``MAGIC`` followed by the ``.npz`` bytes (a zip); the JSON is the uint8 array
``__state__.json`` inside it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from coder.embedded.models import (
    KernelParams,
    KernelThemeModel,
    LabelModel,
    PairModel,
    StackModel,
    TrainedState,
)
from coder.errors import CoderError

#: First bytes of a blob in this format (version 1).
MAGIC = b"CODER-STATE\x00npz-json\x00v1\n"
FORMAT_NAME = "npz+json v1"
STATE_MEMBER = "__state__.json"
#: Refuse blobs whose arrays would inflate past this (a hostile file could hold a zip bomb).
MAX_UNPACKED_BYTES = 2 * 1024**3

#: Dataclasses that may be rebuilt from a stored state, by name (nothing else can be).
OBJECT_CLASSES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (KernelParams, KernelThemeModel, PairModel, LabelModel, StackModel)
}
#: Callables a vectorizer may hold as a parameter, by name (``analyzer=str.split``).
CALLABLES: dict[str, Callable[..., Any]] = {"str.split": str.split}
#: Keys that mark an encoded value; a plain dict using one is stored as key/value pairs.
MARKERS = {
    "__array__",
    "__csr__",
    "__set__",
    "__tuple__",
    "__dict__",
    "__object__",
    "__sklearn__",
    "__callable__",
    "__dtype__",
    "__object_array__",
}


class StateFormatError(CoderError):
    """A stored state cannot be written or read in the safe format."""


def blob_format(blob: bytes | None) -> str:
    """What a ``models.blob`` holds: this format, a legacy pickle, nothing, or unknown bytes."""
    if blob is None:
        return "pruned"
    if blob.startswith(MAGIC):
        return FORMAT_NAME
    # Pickle protocols 2 to 5 start with PROTO (0x80) and the protocol number.
    if blob[:1] == b"\x80" and blob[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    return "unknown"


# --- encoding ------------------------------------------------------------------------------


class _Encoder:
    """Walks a value, turning it into JSON-able data and collecting arrays by name."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, value: np.ndarray) -> dict[str, str]:
        name = f"a{len(self.arrays)}"
        self.arrays[name] = np.ascontiguousarray(value)
        return {"__array__": name}

    def encode(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, int | float):
            return value
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                items = value.tolist()
                if value.ndim != 1 or not all(isinstance(item, str) for item in items):
                    raise StateFormatError(f"{where}: an object array that is not a list of text")
                return {"__object_array__": items}
            return self.array(value)
        if sp.issparse(value):
            matrix = sp.csr_matrix(value)
            return {
                "__csr__": {
                    "data": self.array(matrix.data),
                    "indices": self.array(matrix.indices),
                    "indptr": self.array(matrix.indptr),
                    "shape": list(matrix.shape),
                }
            }
        if isinstance(value, set | frozenset):
            return {"__set__": [self.encode(item, where) for item in sorted(value, key=repr)]}
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(item, where) for item in value]}
        if isinstance(value, list):
            return [self.encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, dict):
            if all(isinstance(key, str) and key not in MARKERS for key in value):
                return {key: self.encode(item, f"{where}.{key}") for key, item in value.items()}
            return {
                "__dict__": [
                    [self.encode(key, where), self.encode(item, f"{where}.{key}")]
                    for key, item in value.items()
                ]
            }
        if isinstance(value, TfidfVectorizer):
            return {"__sklearn__": "TfidfVectorizer", **self.encode(vectorizer_parts(value), where)}
        if isinstance(value, LogisticRegression):
            return {
                "__sklearn__": "LogisticRegression",
                **self.encode(logistic_parts(value), where),
            }
        if isinstance(value, type) and issubclass(value, np.generic):
            return {"__dtype__": np.dtype(value).name}
        if callable(value):
            for name, known in CALLABLES.items():
                if value is known:
                    return {"__callable__": name}
            raise StateFormatError(f"{where}: cannot store the callable {value!r}")
        name = type(value).__name__
        if dataclasses.is_dataclass(value) and OBJECT_CLASSES.get(name) is type(value):
            parts = value.to_parts() if hasattr(value, "to_parts") else _fields(value)
            return {"__object__": name, "fields": self.encode(parts, f"{where}({name})")}
        raise StateFormatError(
            f"{where}: cannot store a value of type {type(value).__qualname__} in a trained state"
        )


def _fields(value: Any) -> dict[str, Any]:
    return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}


def vectorizer_parts(vectorizer: TfidfVectorizer) -> dict[str, Any]:
    """A fitted TF-IDF vectorizer as its parameters, vocabulary and idf weights."""
    return {
        "params": vectorizer.get_params(),
        "vocabulary": dict(vectorizer.vocabulary_),
        "idf": np.asarray(vectorizer.idf_),
        "fixed_vocabulary": bool(getattr(vectorizer, "fixed_vocabulary_", False)),
    }


def vectorizer_from_parts(parts: dict[str, Any]) -> TfidfVectorizer:
    """The vectorizer :func:`vectorizer_parts` described (transforms exactly as before)."""
    vectorizer = TfidfVectorizer(**parts["params"])
    vectorizer.vocabulary_ = {str(term): int(index) for term, index in parts["vocabulary"].items()}
    vectorizer.fixed_vocabulary_ = bool(parts["fixed_vocabulary"])
    vectorizer.idf_ = np.asarray(parts["idf"], dtype=np.float64)
    return vectorizer


#: Learned attributes of a fitted LogisticRegression that prediction reads.
LOGISTIC_ATTRIBUTES = ("coef_", "intercept_", "classes_", "n_features_in_", "n_iter_")


def logistic_parts(model: LogisticRegression) -> dict[str, Any]:
    """A fitted logistic regression as its parameters and learned attributes."""
    return {
        "params": model.get_params(),
        **{name: getattr(model, name) for name in LOGISTIC_ATTRIBUTES if hasattr(model, name)},
    }


def logistic_from_parts(parts: dict[str, Any]) -> LogisticRegression:
    """The model :func:`logistic_parts` described (same probabilities)."""
    model = LogisticRegression(**parts["params"])
    for name in LOGISTIC_ATTRIBUTES:
        if name in parts:
            setattr(model, name, parts[name])
    return model


# --- decoding ------------------------------------------------------------------------------


class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def array(self, reference: Any) -> np.ndarray:
        if not isinstance(reference, dict) or set(reference) != {"__array__"}:
            raise StateFormatError(f"expected an array reference, got {str(reference)[:80]}")
        name = reference["__array__"]
        if name not in self.arrays:
            raise StateFormatError(f"the stored state names a missing array {name!r}")
        return self.arrays[name]

    def decode(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.decode(item) for item in value]
        if not isinstance(value, dict):
            return value
        if "__array__" in value:
            return self.array(value)
        if "__object_array__" in value:
            return np.array(value["__object_array__"], dtype=object)
        if "__csr__" in value:
            parts = value["__csr__"]
            return sp.csr_matrix(
                (
                    self.array(parts["data"]),
                    self.array(parts["indices"]),
                    self.array(parts["indptr"]),
                ),
                shape=tuple(parts["shape"]),
            )
        if "__set__" in value:
            return {self.decode(item) for item in value["__set__"]}
        if "__tuple__" in value:
            return tuple(self.decode(item) for item in value["__tuple__"])
        if "__dict__" in value:
            return {self.decode(key): self.decode(item) for key, item in value["__dict__"]}
        if "__dtype__" in value:
            return np.dtype(str(value["__dtype__"])).type
        if "__callable__" in value:
            name = value["__callable__"]
            if name not in CALLABLES:
                raise StateFormatError(f"the stored state names an unknown function {name!r}")
            return CALLABLES[name]
        if "__sklearn__" in value:
            kind = value["__sklearn__"]
            parts = {key: self.decode(item) for key, item in value.items() if key != "__sklearn__"}
            if kind == "TfidfVectorizer":
                return vectorizer_from_parts(parts)
            if kind == "LogisticRegression":
                return logistic_from_parts(parts)
            raise StateFormatError(f"the stored state holds an unknown estimator {kind!r}")
        if "__object__" in value:
            name = value["__object__"]
            cls = OBJECT_CLASSES.get(name)
            if cls is None:
                raise StateFormatError(f"the stored state holds an unknown object {name!r}")
            fields = self.decode(value["fields"])
            if hasattr(cls, "from_parts"):
                return cls.from_parts(fields)
            return build_dataclass(cls, fields)
        return {key: self.decode(item) for key, item in value.items()}


def build_dataclass(cls: type[Any], values: dict[str, Any]) -> Any:
    """``cls(**values)`` keeping only its fields: a state may have been written by a newer
    coder with more fields; missing fields take their defaults."""
    names = {field.name for field in dataclasses.fields(cls)}
    return cls(**{key: item for key, item in values.items() if key in names})


# --- the blob ------------------------------------------------------------------------------


def state_to_parts(state: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A trained state as (JSON-able document, named arrays)."""
    encoder = _Encoder()
    document = {
        "format": FORMAT_NAME,
        "type": type(state).__name__,
        "fields": encoder.encode(_fields(state), type(state).__name__),
    }
    return document, encoder.arrays


def state_from_parts(document: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    """The trained state :func:`state_to_parts` described."""
    if document.get("type") != TrainedState.__name__:
        raise StateFormatError(
            f"the stored state is a {document.get('type')!r}, not a TrainedState"
        )
    fields = _Decoder(arrays).decode(document.get("fields") or {})
    return build_dataclass(TrainedState, fields)


def dumps(state: Any) -> bytes:
    """The blob stored in ``models.blob``: :data:`MAGIC` + an npz of arrays and the JSON."""
    document, arrays = state_to_parts(state)
    # Insertion order kept (not sorted): a loaded dict iterates as the trained one did.
    text = json.dumps(document, ensure_ascii=False)
    buffer = io.BytesIO()
    buffer.write(MAGIC)
    payload = {**arrays, STATE_MEMBER: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    np.savez_compressed(buffer, **payload)  # type: ignore[arg-type]
    return buffer.getvalue()


def loads(blob: bytes) -> Any:
    """The trained state in a blob written by :func:`dumps`; never executes stored code."""
    if not blob.startswith(MAGIC):
        raise StateFormatError(f"not a stored state in the {FORMAT_NAME} format")
    data = io.BytesIO(blob[len(MAGIC) :])
    try:
        with zipfile.ZipFile(data) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_UNPACKED_BYTES:
            raise StateFormatError(
                f"the stored state would unpack to {unpacked:,} bytes (more than "
                f"{MAX_UNPACKED_BYTES:,}); refused"
            )
        data.seek(0)
        with np.load(data, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        document = json.loads(bytes(arrays.pop(STATE_MEMBER)).decode("utf-8"))
    except StateFormatError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as error:
        raise StateFormatError(
            f"the stored state is damaged ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(document, dict):
        raise StateFormatError("the stored state's JSON is not an object")
    try:
        return state_from_parts(document, arrays)
    except StateFormatError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise StateFormatError(
            f"the stored state does not fit this version of coder ({type(error).__name__}: {error})"
        ) from None
