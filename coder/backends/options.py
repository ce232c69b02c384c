"""Which options each backend takes, and building the backend a command asked for.

The built-in ``local`` backend takes only ``model``; ``openai`` takes the LLM settings
(``coder.llm.config``); a plugin backend takes ``model`` and its own ``-o KEY=VALUE``
options. Asking a backend for an option it does not take is an error, not a silent no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coder.backends.base import Classifier, get_classifier
from coder.errors import BackendError

BUILT_IN = ("local", "openai")


def default_backend(batch_api: bool) -> str:
    """The backend when none is named: 'openai' for the Batch API, else the offline 'local'."""
    return "openai" if batch_api else "local"


def _refuse_llm_settings(settings: Mapping[str, Any]) -> None:
    ignored = sorted(set(settings) - {"model"})
    if ignored:
        raise BackendError(f"option(s) for the openai backend only: {', '.join(ignored)}")


def backend_options(
    backend: str,
    settings: Mapping[str, Any],
    plugin_options: Mapping[str, str],
    *,
    plugin_given: bool,
) -> dict[str, Any]:
    """The keyword options to build ``backend`` with, from the LLM ``settings`` given (None
    values already dropped) and a plugin's ``-o`` options (``plugin_given``: any were given)."""
    options = dict(settings)
    if backend not in BUILT_IN:
        # A plugin backend: it gets --model and its own -o KEY=VALUE options.
        _refuse_llm_settings(options)
        options.update(plugin_options)
    elif plugin_given:
        raise BackendError("-o/--option is for plugin backends ('coder backends' lists them)")
    if backend == "local":
        _refuse_llm_settings(options)
    return options


def build_classifier(backend: str, options: dict[str, Any], store: Any = None) -> Classifier:
    """The classifier ``backend`` built with ``options``, given the project ``store``:
    the local backend uses its latest trained model (else zero-shot), the openai backend
    its reviewed answers (shortlist size, examples)."""
    if backend == "local":
        local_options: dict[str, Any] = {"model_store": store}
        if options.get("model"):
            local_options["model"] = options["model"]
        try:
            return get_classifier("local", **local_options)
        except ImportError as error:
            raise BackendError(f"the local backend is not available: {error}") from error
    if backend == "openai" and store is not None:
        return get_classifier(backend, model_store=store, **options)
    return get_classifier(backend, **options)
