"""The model's context window: what a server reports, what its refusals teach, what fits.

The window comes from the setting (``--context-window``), else a local server's own
report (:func:`probe_context_window`), else a refusal that names it
(:meth:`ContextWindow.learn`). A prompt fits when its estimated tokens, times the
learned token ratio and :data:`CONTEXT_SAFETY`, leave room for the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx2

from coder.llm.proxy import ProxyRouter, ProxyRoutes

#: a guess of the answer length per response, for the pre-flight estimate
COMPLETION_TOKENS_PER_RESPONSE = 180
#: Our token count is chars/4 of the messages plus the JSON schema; a tokenizer may need
#: more (code ids, punctuation, other scripts), so a prompt is fitted to the window with this
#: margin. (llama-cpp-python counted about half our estimate for fitted NHS prompts: it
#: turns the tool schema into a grammar instead of prompt text.) A server that still
#: refuses a prompt as too long teaches a larger ratio (``ContextWindow.learn``).
CONTEXT_SAFETY = 1.25
#: "Requested tokens (5012) exceed context window of 4096" (llama-cpp-python), "maximum
#: context length is 8192 tokens" (OpenAI, vLLM), "n_ctx: 4096" / "n_ctx_slot" (llama.cpp)
_WINDOW_IN_ERROR = re.compile(
    r"(?:context window of|maximum context length is|n_ctx(?:_slot)?\W+)\s*(\d{3,})", re.I
)
_REQUESTED = re.compile(r"Requested tokens \((\d+)\)")


class ContextTooSmall(Exception):
    """The smallest prompt for an item does not fit the model's context window."""


@dataclass
class ContextWindow:
    """The window in tokens (None: unknown) and how generously our estimate is counted."""

    size: int | None = None
    #: measured (server tokens / our estimate), raised when a server says a prompt was
    #: longer than we thought
    token_ratio: float = 1.0

    def answer_reserve(self, items: int, max_tokens: int | None) -> int:
        """Tokens kept free for the answer to ``items`` responses."""
        if self.size is None:
            return 0
        per_item = min(max_tokens or COMPLETION_TOKENS_PER_RESPONSE * 2, 512)
        return min(per_item * items, self.size // 4)

    def budget(self, items: int, max_tokens: int | None) -> int | None:
        """Tokens a prompt for ``items`` responses may take (None: no limit known)."""
        if self.size is None:
            return None
        return self.size - self.answer_reserve(items, max_tokens)

    def needed(self, tokens: int) -> float:
        """What a prompt of ``tokens`` estimated tokens is counted as, margin included."""
        return tokens * self.token_ratio * CONTEXT_SAFETY

    def learn(self, error: BaseException) -> bool:
        """True when ``error`` is a server saying the prompt passed its context window and
        the window it names is smaller than the one assumed (which is then taken)."""
        seen: set[int] = set()
        item: BaseException | None = error
        while item is not None and id(item) not in seen:
            seen.add(id(item))
            found = _WINDOW_IN_ERROR.search(str(item))
            if found:
                window = int(found.group(1))
                requested = _REQUESTED.search(str(item))
                if self.size is None or window < self.size:
                    self.size = window
                    return True
                if requested and int(requested.group(1)) > window:
                    # Our estimate was short: count tokens more generously from now on.
                    self.token_ratio *= 1.2
                    return True
                return False
            item = item.__cause__ or item.__context__
        return False


_WINDOW_KEYS = ("max_model_len", "context_length", "context_window", "n_ctx", "max_context_length")


def _window_in(data: Any) -> int | None:
    """The first context-window figure found in a server's metadata (searched shallowly)."""
    if isinstance(data, dict):
        for key in _WINDOW_KEYS:
            value = data.get(key)
            if isinstance(value, int) and value > 0:
                return value
        for key in ("meta", "default_generation_settings", "settings"):
            found = _window_in(data.get(key))
            if found:
                return found
    return None


def _window_in_answer(data: Any, model: str) -> int | None:
    """The window in one metadata answer: the model's entry of a model list, else the body."""
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return _window_in(data)
    matching = [e for e in entries if isinstance(e, dict) and e.get("id") == model]
    for entry in matching or entries[:1]:
        found = _window_in({k: v for k, v in entry.items() if k != "meta"})
        if found:
            return found
    return None


async def probe_context_window(
    base_url: str, model: str, timeout: float = 5.0, routes: ProxyRoutes | None = None
) -> int | None:
    """The context window a local OpenAI-compatible server reports, if it reports one.

    vLLM lists ``max_model_len`` per model in ``/v1/models``; llama.cpp's server has
    ``n_ctx`` under ``default_generation_settings`` in ``/props`` (and ``meta.n_ctx_train``,
    the training length, in ``/v1/models``, which is not the serving window and is ignored);
    LM Studio ``context_length``. llama-cpp-python reports none: its window is learned from
    its "exceed context window of N" error instead.
    """
    root = base_url.rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    # Through the run's proxies (default: the environment's), as the calls themselves go.
    transport = ProxyRouter(httpx2.Limits(), routes or ProxyRoutes.resolve())
    async with httpx2.AsyncClient(timeout=timeout, transport=transport) as http:
        for url in (f"{base_url.rstrip('/')}/models", f"{root}/props"):
            try:
                answer = await http.get(url)
                if answer.status_code != 200 or len(answer.content) > 2**20:
                    continue
                data = answer.json()
            except (httpx2.HTTPError, ValueError):
                continue
            found = _window_in_answer(data, model)
            if found:
                return found
    return None
