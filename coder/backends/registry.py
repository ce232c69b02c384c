"""Backends are plugins: found by name through the ``coder.backends`` entry-point group.

In the spirit of simonw/llm's plugins, a package adds a backend to coder by declaring an
entry point; coder never needs editing::

    # the plugin's pyproject.toml
    [project.entry-points."coder.backends"]
    azure = "coder_azure:AzureClassifier"

The target is a callable (usually a class) that takes keyword options (``model`` when
the user gave ``--model``, plus whatever the CLI passes for that backend) and returns a
:class:`coder.backends.base.Classifier`: an object with ``backend`` and ``model`` names
and ``propose(responses, codebook) -> list[ProposalResult]``. Optional methods the
pipeline uses when present: ``prepare(responses, codebook)`` (see the answers before
proposing), ``fit(examples, codebook)`` (learn from labelled examples, for ``coder
eval --train``), ``propose_iter`` (stream results) and ``code_scores`` (ranked codes).

The two built-in backends are registered the same way in coder's own pyproject.toml.
They are also listed here, so a source checkout that was never pip-installed (no entry
point metadata) still has them; a plugin cannot take a built-in's name.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from coder.errors import BackendError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "coder.backends"

#: name -> "module:attribute" of the backends that ship with coder.
BUILT_IN: dict[str, str] = {
    "local": "coder.embedded.classifier:LocalClassifier",
    "openai": "coder.llm.classifier:LLMClassifier",
}


@dataclass(frozen=True)
class BackendInfo:
    """One registered backend: its name, what it points at and who provides it."""

    name: str
    target: str  # "module:attribute"
    provider: str  # "coder" for the built-ins, else the plugin's distribution name

    @property
    def built_in(self) -> bool:
        return self.provider == "coder"


def _entry_points() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def available_backends() -> dict[str, BackendInfo]:
    """Every backend coder can use now, built-ins first, then plugins by name."""
    found = {name: BackendInfo(name, target, "coder") for name, target in BUILT_IN.items()}
    plugins: dict[str, BackendInfo] = {}
    for point in _entry_points():
        provider = point.dist.name if point.dist is not None else "unknown"
        if point.name in found:
            if point.value != found[point.name].target:
                log.warning(
                    "ignoring backend %r from %s: the name belongs to a built-in backend",
                    point.name,
                    provider,
                )
            continue
        plugins[point.name] = BackendInfo(point.name, point.value, provider)
    return found | dict(sorted(plugins.items()))


def backend_names() -> list[str]:
    """The names ``--backend`` accepts."""
    return list(available_backends())


def load_backend(name: str) -> Callable[..., Any]:
    """The factory registered as ``name`` (imported now, not before)."""
    backends = available_backends()
    info = backends.get(name)
    if info is None:
        raise BackendError(
            f"unknown backend {name!r}: choose one of {', '.join(backends)} "
            "(plugins add more: see 'coder backends')"
        )
    module_name, _, attribute = info.target.partition(":")
    try:
        module = importlib.import_module(module_name)
        target: Any = module
        for part in attribute.split(".") if attribute else ():
            target = getattr(target, part)
    except ImportError as error:
        raise BackendError(f"backend {name!r} ({info.target}) cannot be loaded: {error}") from error
    except AttributeError as error:
        raise BackendError(f"backend {name!r}: {info.target} does not exist ({error})") from error
    if not callable(target):
        raise BackendError(f"backend {name!r}: {info.target} is not callable")
    return target  # type: ignore[no-any-return]
