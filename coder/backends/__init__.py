"""Classifier backends: the embedded offline default and OpenAI-compatible LLMs.

Every backend turns responses into :class:`schemas.Proposal` objects wrapped in
:class:`ProposalResult`, which carries the provenance the store records. The
pre-coding pipeline (``coder/precode.py``), the eval suite and ``coder discover``
only talk to this interface.
"""

from __future__ import annotations

from coder.backends.base import Classifier, ProposalResult, get_classifier
from coder.backends.registry import available_backends, backend_names

__all__ = [
    "Classifier",
    "ProposalResult",
    "available_backends",
    "backend_names",
    "get_classifier",
]
