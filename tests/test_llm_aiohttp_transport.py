"""Model calls go through aiohttp's HTTP/1.1 client under the openai client's httpx2.

The fault and hostile-server tests (tests/test_llm_faults.py,
tests/test_llm_hostile_server.py) run on this transport by default; here: the choice of
transport, the same answers and audit rows on either, and a
refused connection reported as a failed proposal after every attempt was logged.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx2
import pytest

from coder.llm import aiohttp_transport
from coder.llm.classifier import LLMClassifier
from coder.llm.transport import LoggingTransport
from coder.store import Store
from tests.llm_fake_server import FakeOpenAI, make_project


def _classifier(base_url: str, logged: list[dict[str, Any]], **overrides: Any) -> LLMClassifier:
    return LLMClassifier(
        model="gpt-4o-mini",
        base_url=base_url,
        concurrency=3,
        shortlist=False,
        initial_wait=0.01,
        call_logger=lambda **fields: logged.append(fields),
        **overrides,
    )


def test_aiohttp_unless_httpx_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    classifier = LLMClassifier(model="m", base_url="http://127.0.0.1:9/v1")
    monkeypatch.delenv(aiohttp_transport.ENV_VAR, raising=False)
    inner = LoggingTransport(classifier, 32).inner
    assert isinstance(inner, aiohttp_transport.AiohttpTransport)
    assert inner.limits.max_keepalive_connections == 32
    monkeypatch.setenv(aiohttp_transport.ENV_VAR, "httpx")
    assert isinstance(LoggingTransport(classifier, 32).inner, httpx2.AsyncHTTPTransport)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_either_transport_gives_every_answer_and_audit_row(
    transport: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(aiohttp_transport.ENV_VAR, transport)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-transport-test-local")
    db = tmp_path / "p.db"
    make_project(db, n=9).close()
    logged: list[dict[str, Any]] = []
    with FakeOpenAI() as fake, Store(db) as store:
        responses = list(store.responses())
        results = _classifier(fake.base_url, logged).propose(responses, store.codebook()[1])
    assert [r.response_id for r in results] == [r.id for r in responses]
    assert all(r.ok for r in results), [r.error for r in results]
    assert sorted(i for entry in logged for i in entry["response_ids"]) == sorted(
        r.id for r in responses
    )
    assert all(entry["response"]["status"] == 200 and entry["error"] is None for entry in logged)
    assert all(entry["prompt_tokens"] > 0 for entry in logged)


def test_a_refused_connection_is_a_failed_proposal_with_every_attempt_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(aiohttp_transport.ENV_VAR, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-transport-test-local")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = tmp_path / "p.db"
    make_project(db, n=1).close()
    logged: list[dict[str, Any]] = []
    with Store(db) as store:
        classifier = _classifier(f"http://127.0.0.1:{port}/v1", logged, max_attempts=2)
        [result] = classifier.propose(list(store.responses()), store.codebook()[1])
    assert not result.ok and result.error
    assert "connect" in result.error.lower()
    assert len(logged) == 2
    assert all(entry["response"] is None and "ConnectError" in entry["error"] for entry in logged)
