"""Issue 15, item 11: an LLM server that drips, bombs, nests or answers with a web page.

Each case runs the real LLM backend against a real HTTP server on 127.0.0.1
(tests/llm_fake_server.py) and checks what the user and the audit log get: a failed
proposal whose error says what happened, and one ``llm_calls`` row per attempt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coder.llm.classifier import LLMClassifier
from coder.precode import precode
from coder.store import Store
from tests.llm_fake_server import FakeOpenAI, make_project


@pytest.fixture
def fake() -> Any:
    with FakeOpenAI() as server:
        yield server


def classifier_for(fake: FakeOpenAI, **overrides: Any) -> LLMClassifier:
    settings: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "base_url": fake.base_url,
        "mode": "tools",
        "initial_wait": 0.001,
        "max_wait": 0.01,
        "max_attempts": 2,
        "request_timeout": 5.0,
        "concurrency": 1,
        **overrides,
    }
    return LLMClassifier(**settings)


def run_one(tmp_path: Path, fake: FakeOpenAI, *faults: str, **overrides: Any) -> tuple[Store, str]:
    """Pre-code one response against ``faults``; returns the store and the stored error."""
    store = make_project(tmp_path / "p.db", n=1)
    fake.add_faults(*faults)
    summary = precode(store, classifier_for(fake, **overrides))
    assert summary.failed == 1 and summary.proposed == 0
    (error,) = [row[0] for row in store.db.execute("select error from proposals")]
    return store, error


def calls(store: Store) -> list[dict[str, Any]]:
    return list(store.db.query("select error, response from llm_calls order by id"))


def test_a_dripping_server_is_cut_off_at_the_deadline(tmp_path: Path, fake: FakeOpenAI) -> None:
    # 0.05 s a byte: no single read waits long, but the ~600-byte answer takes ~30 s. With a
    # per-read timeout only, both attempts would wait for the whole answer and succeed.
    store, error = run_one(tmp_path, fake, "drip", "drip", request_timeout=0.5)
    assert "no complete answer within 0.5 s" in error
    assert "after 2 attempt" in error or len(calls(store)) == 2
    logged = calls(store)
    assert len(logged) == len(fake.chat_requests) == 2
    assert all("AnswerDeadline" in row["error"] for row in logged)


def test_a_gzip_bomb_is_refused_at_the_size_cap(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.bomb_bytes = 8 * 2**20
    store, error = run_one(tmp_path, fake, "gzip_bomb", max_response_bytes=2**20)
    assert "(gzip-compressed) passed 1,048,576 bytes once decoded" in error
    # Not retried: a server that sent it once would send it again.
    logged = calls(store)
    assert len(logged) == len(fake.chat_requests) == 1
    assert "AnswerTooLarge" in logged[0]["error"]


def test_a_huge_body_is_refused_and_logged(tmp_path: Path, fake: FakeOpenAI) -> None:
    # The 50 MB of '[': "Connection error" and no llm_calls row. Scaled down.
    fake.deep_bytes = 3 * 2**20
    store, error = run_one(tmp_path, fake, "deep_json", max_response_bytes=2**20)
    assert "passed 1,048,576 bytes" in error
    assert len(calls(store)) == 1


def test_deeply_nested_json_is_reported_and_every_attempt_logged(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    store, error = run_one(tmp_path, fake, "deep_json", "deep_json")
    assert "JSON nested too deeply to read" in error and "Connection error" not in error
    logged = calls(store)
    assert len(logged) == len(fake.chat_requests) == 2
    assert all(row["error"] and "AnswerNotJSON" in row["error"] for row in logged)


def test_an_html_page_says_what_came_back(tmp_path: Path, fake: FakeOpenAI) -> None:
    store, error = run_one(tmp_path, fake, "html200", "html200")
    assert "content-type 'text/html; charset=utf-8'" in error
    assert "<html><head><title>Sign in" in error
    assert "No choices" not in error
    assert len(calls(store)) == 2


def test_a_good_answer_after_a_bad_one_is_kept(tmp_path: Path, fake: FakeOpenAI) -> None:
    store = make_project(tmp_path / "p.db", n=2)
    fake.add_faults("html200")
    summary = precode(store, classifier_for(fake))
    assert summary.proposed == 2 and summary.failed == 0
    logged = calls(store)
    assert len(logged) == len(fake.chat_requests) == 3
    assert sum(1 for row in logged if row["error"]) == 1
