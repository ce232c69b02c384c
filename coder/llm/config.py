"""Settings of the LLM backend: endpoint, model, instructor mode, limits and retries.

Precedence, lowest first: built-in defaults, the openai client's own environment
variables (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``), a config file (TOML or YAML),
then command-line flags. The API key itself is never stored in the settings that are
logged: only the name of the environment variable that holds it.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from coder.errors import BackendError
from coder.llm.proxy import without_credentials

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MODES = ("tools", "json", "json_schema", "md_json")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class LLMSettings:
    """Everything that configures the LLM backend (no secrets)."""

    model: str = "gpt-4o-mini"
    base_url: str | None = None
    #: name of the environment variable holding the key (the key is read at call time)
    api_key_env: str = "OPENAI_API_KEY"
    #: instructor mode; None picks a default for the endpoint (see :func:`default_mode`)
    mode: str | None = None
    temperature: float = 0.0
    #: sampling seed sent with every request (None: none sent); recorded in llm_calls
    seed: int | None = None
    max_tokens: int | None = 1024
    concurrency: int = 4
    #: responses per request (1 = one request each)
    batch_size: int = 1
    #: token budget of the responses in one batched request
    batch_max_tokens: int = 3000
    #: validation re-asks through instructor after the first answer
    validation_retries: int = 2
    #: transport retries (429, 5xx, timeouts, connection errors)
    max_attempts: int = 6
    initial_wait: float = 1.0
    max_wait: float = 60.0
    #: total time budget for one item's transport retries, in seconds
    max_total_wait: float = 300.0
    #: seconds for one whole HTTP attempt: connecting, sending and reading the entire
    #: answer (not per read: a server dripping a byte a second must not hold a run)
    request_timeout: float = 120.0
    #: the largest answer accepted, in bytes after decompression (a gzip bomb stops here)
    max_response_bytes: int = 16 * 2**20
    #: redact PII before text leaves the machine (only applied to non-local endpoints)
    redact: bool = True
    #: price table override (JSON/TOML/YAML file)
    prices_file: str | None = None
    #: Batch API polling interval in seconds
    batch_poll_interval: float = 30.0
    #: send each response only the codebook's likeliest themes (coder/llm/shortlist.py)
    shortlist: bool = True
    #: codes per shortlist; None: chosen on reviewed answers, else a measured default
    shortlist_size: int | None = None
    #: share of reviewers' codes the shortlist must keep when reviewed answers choose its size
    shortlist_recall: float = 0.98
    #: similar reviewed answers shown with their labels; None: 3 when there are any
    examples: int | None = None
    #: the model's context window in tokens; None: the server's reported limit, if any
    context_window: int | None = None
    #: HTTP(S) proxy for model calls; None: $CODER_LLM_PROXY, else HTTPS_PROXY & co.
    #: (coder/llm/proxy.py; NO_PROXY applies either way)
    proxy: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def resolved_base_url(self) -> str:
        """The endpoint actually used: the setting, else $OPENAI_BASE_URL, else OpenAI."""
        return (self.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")

    @property
    def resolved_mode(self) -> str:
        return self.mode or default_mode(self.resolved_base_url)

    @property
    def is_local(self) -> bool:
        return is_local_endpoint(self.resolved_base_url)

    def api_key(self) -> str:
        """The API key from the environment; local servers accept a placeholder."""
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        if self.is_local:
            return "sk-no-key-required"
        raise BackendError(
            f"no API key: set ${self.api_key_env} (or choose another variable with --api-key-env) "
            f"for {self.resolved_base_url}"
        )

    def public(self) -> dict[str, Any]:
        """Settings safe to log and store (there is no key in them by construction)."""
        data = dataclasses.asdict(self)
        data["base_url"] = self.resolved_base_url
        if self.proxy:  # a proxy URL may carry a password
            data["proxy"] = without_credentials(self.proxy)
        data["mode"] = self.resolved_mode
        return data

    def params(self) -> dict[str, Any]:
        """The settings that change a model's answer: part of the cache key."""
        params: dict[str, Any] = {
            "base_url": self.resolved_base_url,
            "mode": self.resolved_mode,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "batch_size": self.batch_size,
        }
        if self.seed is not None:  # only when set, so cache keys made without one still hit
            params["seed"] = self.seed
        return params


@lru_cache(maxsize=64)
def is_local_endpoint(base_url: str) -> bool:
    """True when the endpoint's host is this machine (no text leaves it)."""
    host = urlparse(base_url).hostname or ""
    return host in LOCAL_HOSTS


@lru_cache(maxsize=64)
def default_mode(base_url: str) -> str:
    """A sensible instructor mode for an endpoint.

    OpenAI and Azure support strict JSON schema; Ollama's OpenAI shim is most reliable
    in JSON mode; llama.cpp / llama-cpp-python reject ``response_format`` json_schema but
    handle forced tool calls, so everything else gets TOOLS.
    """
    parsed = urlparse(base_url)
    host = parsed.hostname or ""
    if host.endswith("openai.com") or host.endswith("openai.azure.com"):
        return "json_schema"
    if parsed.port == 11434:
        return "json"
    return "tools"


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or YAML config file; a ``[precode]``/``llm`` section is used if present."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise BackendError(f"{path}: cannot read config file: {error}") from error
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise BackendError(f"{path}: not valid {path.suffix.lstrip('.')}: {error}") from error
    if not isinstance(data, dict):
        raise BackendError(f"{path}: expected a mapping of settings")
    for section in ("llm", "precode"):
        if isinstance(data.get(section), dict):
            data = data[section]
            break
    if "api_key" in data:
        raise BackendError(
            f"{path}: 'api_key' is not allowed in a config file; put the key in an environment "
            "variable and name it with 'api_key_env'"
        )
    return data


def build_settings(config_file: str | Path | None = None, **overrides: Any) -> LLMSettings:
    """Settings from defaults, a config file and flag overrides (None means 'not given')."""
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(load_config_file(config_file))
    values.update({key: value for key, value in overrides.items() if value is not None})
    known = {f.name for f in dataclasses.fields(LLMSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise BackendError(f"unknown LLM setting(s): {', '.join(unknown)}")
    if isinstance(values.get("shortlist"), str):
        # -o shortlist=off / a config file's "shortlist: off"
        values["shortlist"] = values["shortlist"].strip().lower() not in ("off", "false", "0", "no")
    for name in ("shortlist_size", "examples", "context_window"):
        if values.get(name) is not None:
            try:
                values[name] = int(values[name])
            except (TypeError, ValueError):
                raise BackendError(f"{name} must be a whole number, not {values[name]!r}") from None
            if values[name] < (0 if name == "examples" else 1):
                raise BackendError(f"{name} must be at least {0 if name == 'examples' else 1}")
    if values.get("mode") is not None and values["mode"] not in MODES:
        raise BackendError(f"unknown mode {values['mode']!r}: choose one of {', '.join(MODES)}")
    return LLMSettings(**values)


def endpoint_configured_in_env() -> bool:
    """True when the openai client's environment variables name an endpoint or key."""
    return bool(os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"))
