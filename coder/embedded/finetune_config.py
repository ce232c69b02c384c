"""Settings, result and availability of a fine-tuning run (see :mod:`coder.embedded.finetune`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

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
    #: rare theme codes' positives weigh (negatives / positives) ** this in the themes loss,
    #: capped (finetune_trainer.theme_positive_weights); 0: every label alike
    theme_balance: float = 0.0
    #: train a stance cross-encoder on (question, answer) pairs instead of the sentence
    #: encoder (see coder/embedded/stance_pairs.py)
    pairs: bool = False
    #: seconds of training before stopping with a resumable checkpoint (None: no limit)
    time_budget: float | None = None
    #: stop (resumably) after this many steps in total: tests and benchmarks
    max_steps: int | None = None

    def identity(self) -> dict[str, Any]:
        """The settings that change the result (a checkpoint with others is not resumed)."""
        values = asdict(self)
        values.pop("time_budget")
        values.pop("max_steps")
        if not values["theme_balance"]:  # off: runs (and checkpoints) keep their old identity
            values.pop("theme_balance")
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
    #: a pair run's stance head (``weight`` 384 x classes, ``bias``) and its classes
    head: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    classes: list[str] = field(default_factory=list)


def config_from(**options: Any) -> FineTuneConfig:
    """A config from keyword options, ignoring None (CLI options left unset)."""
    known = {item.name for item in fields(FineTuneConfig)}
    return FineTuneConfig(**{k: v for k, v in options.items() if v is not None and k in known})
