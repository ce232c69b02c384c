"""Context limits: prompts are fitted to the model's context window (given, or reported by
the server), and an item that cannot fit fails with a clear error instead of a call."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.llm.classifier import CONTEXT_SAFETY, LLMClassifier, probe_context_window
from coder.store import Store
from tests.llm_fake_server import FakeOpenAI, make_project, precode_args


@pytest.fixture
def fake() -> Any:
    with FakeOpenAI() as server:
        yield server


def sent_tokens(body: dict[str, Any]) -> float:
    """chars/4 of what a request carried: messages and the tool schema."""
    return (len(json.dumps(body["messages"])) + len(json.dumps(body.get("tools", [])))) / 4


def test_prompts_shrink_to_fit_a_small_window(tmp_path: Path, fake: FakeOpenAI) -> None:
    db = tmp_path / "p.db"
    make_project(db, n=3).close()
    whole = CliRunner().invoke(cli, precode_args(db, fake, "--no-shortlist"))
    assert whole.exit_code == 0, whole.output
    biggest = max(sent_tokens(body) for body in fake.chat_requests)
    # The built-in codebook's instructions and schema alone take about 2,000 tokens.
    window = 3500
    assert biggest * CONTEXT_SAFETY > window - 512  # the whole codebook would not fit

    args = precode_args(db, fake, "--redo", "--context-window", str(window))
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "3 proposed" in result.output
    for body in fake.chat_requests[3:]:
        # Our estimate counts JSON-escaped text generously; the prompt fits with room
        # left for the answer.
        assert sent_tokens(body) <= window
    with Store(db) as store:
        rows = list(store.db.query("select params from proposals order by id desc limit 3"))
    for row in rows:
        params = json.loads(row["params"])
        assert params["context_window"] == window and params["fitted_to_context"]


def test_an_item_that_cannot_fit_fails_clearly_without_a_call(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    db = tmp_path / "p.db"
    make_project(db, n=2).close()
    args = precode_args(db, fake, "--context-window", "256")
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2 failed" in result.output
    assert fake.chat_requests == []
    with Store(db) as store:
        errors = [row["error"] for row in store.db.query("select error from proposals")]
    assert len(errors) == 2
    for error in errors:
        assert error.startswith("ContextTooSmall:") and "context window is 256 tokens" in error


class _Metadata(BaseHTTPRequestHandler):
    routes: dict[str, Any] = {}

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        payload = self.routes.get(self.path)
        body = json.dumps(payload).encode() if payload is not None else b"{}"
        self.send_response(200 if payload is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def metadata_server() -> Iterator[tuple[str, dict[str, Any]]]:
    routes: dict[str, Any] = {}
    handler = type("Handler", (_Metadata,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", routes
    finally:
        server.shutdown()
        server.server_close()


def test_the_window_a_server_reports_is_found(
    metadata_server: tuple[str, dict[str, Any]],
) -> None:
    base_url, routes = metadata_server
    assert asyncio.run(probe_context_window(base_url, "m")) is None  # reports nothing
    # llama.cpp's server: /props; its /v1/models meta.n_ctx_train is not the serving window.
    routes["/v1/models"] = {"data": [{"id": "m", "meta": {"n_ctx_train": 8192}}]}
    routes["/props"] = {"default_generation_settings": {"n_ctx": 4096}}
    assert asyncio.run(probe_context_window(base_url, "m")) == 4096
    # vLLM: max_model_len per model in /v1/models.
    routes["/v1/models"] = {"data": [{"id": "other", "max_model_len": 2048}, {"id": "m", "max_model_len": 32768}]}
    assert asyncio.run(probe_context_window(base_url, "m")) == 32768


def test_a_context_error_teaches_the_window() -> None:
    classifier = LLMClassifier(model="m", base_url="http://127.0.0.1:9/v1")
    error = RuntimeError("Requested tokens (5012) exceed context window of 4096")
    assert classifier._learn_window(error) and classifier.context_window == 4096
    # The same window again, with a prompt we thought would fit: count tokens more generously.
    assert classifier._learn_window(error) and classifier._token_ratio > 1.0
    assert not classifier._learn_window(RuntimeError("HTTP 500: something else"))
