"""The backend interface shared by the embedded classifier and the LLM backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from schemas import Codebook, Proposal, Response


@dataclass
class ProposalResult:
    """One backend answer for one response: a proposal or an error, with provenance."""

    response_id: str
    proposal: Proposal | None
    error: str | None = None
    model_version: str | None = None
    prompt_template_hash: str | None = None
    system_prompt_hash: str | None = None
    input_hash: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.proposal is not None and self.error is None


class ProposalSource(Protocol):
    """What a stored proposal names as its maker: a backend, or the cascade's twin rule
    (coder/twins.py)."""

    backend: str
    model: str


@runtime_checkable
class Classifier(Protocol):
    """What a classifier backend provides."""

    #: short backend name stored with each proposal: 'local' or 'openai'
    backend: str
    #: model name stored with each proposal
    model: str

    def propose(self, responses: Sequence[Response], codebook: Codebook) -> list[ProposalResult]:
        """Propose labels for ``responses`` (one result per response, same order)."""
        ...


def get_classifier(name: str, **options: Any) -> Classifier:
    """Build a backend by name: 'local' (default, offline), 'openai', or a plugin's.

    Backends are looked up in the ``coder.backends`` entry-point group
    (:mod:`coder.backends.registry`); a BackendError names the ones available.
    """
    from coder.backends.registry import load_backend

    return load_backend(name)(**options)  # type: ignore[no-any-return]
