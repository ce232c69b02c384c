"""The openai backend's command-line options, as one decorator, and the settings they give."""

from __future__ import annotations

from typing import Any

import click

from coder.cli.common import F

Option = tuple[str, Any]


def _name(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _value(flag: str, kind: Any, help: str, name: str | None = None) -> Option:
    """An optional value (default None: the config file's or the built-in default), with
    the name of its parameter."""
    name = name or _name(flag)
    return name, click.option(flag, name, type=kind, default=None, help=help)


def _file(flag: str, name: str, help: str) -> Option:
    return _value(flag, click.Path(exists=True, dir_okay=False), help, name)


def _switch(flag: str, help: str) -> Option:
    return _name(flag), click.option(flag, is_flag=True, help=help)


_OPTIONS: tuple[Option, ...] = (
    _value("--model", str, "Model name (openai backend), e.g. gpt-4o-mini."),
    _value("--base-url", str, "Endpoint base URL (default $OPENAI_BASE_URL or OpenAI)."),
    _value(
        "--api-key-env",
        str,
        "Environment variable holding the API key (default OPENAI_API_KEY). Keys are never stored.",
    ),
    _value(
        "--mode",
        click.Choice(["tools", "json", "json_schema", "md_json"]),
        "instructor mode (default: json_schema for OpenAI, tools for llama.cpp/vLLM, json for "
        "Ollama).",
    ),
    _value("--concurrency", int, "Requests in flight at once (default 4)."),
    _value("--batch-size", int, "Responses per request (default 1)."),
    _value("--temperature", float, "Sampling temperature (default 0)."),
    _value("--seed", int, "Sampling seed sent with every LLM request (recorded)."),
    _file("--config", "config_file", "TOML or YAML file of LLM settings (flags override it)."),
    _file(
        "--prices",
        "prices_file",
        "Price table override: model -> {input, output} USD per 1M tokens.",
    ),
    _switch("--no-redact", "Send text as it is (PII redaction is on for non-local endpoints)."),
    _switch(
        "--no-shortlist",
        "Send every response the whole codebook (by default the local model shortlists "
        "the likeliest themes for each response's prompt).",
    ),
    _value(
        "--shortlist-size",
        click.IntRange(min=1),
        "Themes per shortlisted prompt (default: chosen on reviewed answers for 98% "
        "recall, else 60% of the question's themes, at least 12).",
    ),
    _value(
        "--examples",
        click.IntRange(min=0),
        "Similar reviewed answers shown with their labels in each prompt (default 3 when "
        "there are reviewed answers; 0 turns them off).",
    ),
    _value(
        "--context-window",
        click.IntRange(min=256),
        "The model's context window in tokens (default: what a local server reports); "
        "prompts are fitted to it.",
    ),
    _value("--max-attempts", int, "Transport attempts per request (default 6)."),
    _value("--initial-wait", float, "First retry wait in seconds (default 1)."),
    _value(
        "--request-timeout",
        float,
        "Seconds for one whole request, answer included (default 120); a server that "
        "sends its answer too slowly is cut off and retried.",
    ),
    _value("--poll-interval", float, "With --batch-api: seconds between polls."),
    _value(
        "--proxy",
        str,
        "HTTP(S) proxy for model calls, e.g. http://proxy.example:8080 (default "
        "$CODER_LLM_PROXY, else HTTPS_PROXY/HTTP_PROXY; NO_PROXY hosts go direct).",
    ),
)


def openai_options(func: F) -> F:
    """The openai backend's settings as options (``--model`` also names a local model)."""
    for _, option in reversed(_OPTIONS):
        func = option(func)
    return func


#: option name -> LLM setting, where they differ
_RENAMED = {"poll_interval": "batch_poll_interval"}


def openai_settings(values: dict[str, Any]) -> dict[str, Any]:
    """The settings the given options set (pops them from ``values``); unset ones left out
    so the config file and the defaults apply."""
    settings: dict[str, Any] = {}
    for name, _ in _OPTIONS:
        value = values.pop(name)
        if name == "no_redact":
            name, value = "redact", (False if value else None)
        elif name == "no_shortlist":
            name, value = "shortlist", (False if value else None)
        if value is not None:
            settings[_RENAMED.get(name, name)] = value
    return settings
