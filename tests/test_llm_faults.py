"""Fault tests: the LLM backend against a misbehaving OpenAI-compatible server.

Every fault ends with each response either proposed or stored as failed with its
error; none is lost or duplicated.
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
    with FakeOpenAI(timeout_sleep=1.5) as server:
        yield server


def classifier_for(fake: FakeOpenAI, **overrides: Any) -> LLMClassifier:
    settings: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "base_url": fake.base_url,
        "mode": "tools",
        "initial_wait": 0.001,
        "max_wait": 0.01,
        "max_attempts": 4,
        "request_timeout": 0.8,
        "concurrency": 2,
        **overrides,
    }
    return LLMClassifier(**settings)


def rows(store: Store) -> list[dict[str, Any]]:
    return list(store.db.query("select response_id, status, error from proposals order by id"))


def assert_each_once(store: Store, n: int) -> None:
    """Each response has exactly one row from this run: ok or failed, never lost or twice."""
    found = rows(store)
    ids = [row["response_id"] for row in found]
    assert sorted(ids) == sorted({row[0] for row in store.db.execute("select id from responses")})
    assert len(ids) == len(set(ids)) == n


@pytest.mark.parametrize(
    "faults",
    [
        ["429", "429"],
        ["500", "503"],
        ["reset"],
        ["timeout"],
        ["truncated"],
        ["nonjson"],
        ["bad_code"],
        ["bad_quote"],
    ],
    ids=lambda faults: "+".join(faults),
)
def test_transient_or_invalid_answers_are_retried_and_every_item_proposed(
    tmp_path: Path, fake: FakeOpenAI, faults: list[str]
) -> None:
    store = make_project(tmp_path / "p.db", n=4)
    fake.add_faults(*faults)
    classifier = classifier_for(fake)
    summary = precode(store, classifier)
    assert summary.proposed == 4 and summary.failed == 0, summary.errors
    assert_each_once(store, 4)
    assert all(row["status"] == "ok" for row in rows(store))
    # Every attempt is logged, including the failed ones.
    calls = list(store.db.query("select error, response_ids from llm_calls"))
    assert len(calls) == len(fake.chat_requests)
    if faults[0] in {"429", "500", "503", "reset", "timeout", "truncated"}:
        assert sum(1 for call in calls if call["error"]) >= len(faults)


def test_429_honours_retry_after(tmp_path: Path, fake: FakeOpenAI) -> None:
    store = make_project(tmp_path / "p.db", n=1)
    fake.add_faults("429")
    # Backoff alone would wait ~1 ms; the server's Retry-After asks for 50 ms.
    classifier = classifier_for(fake, initial_wait=0.001, max_wait=1.0)
    import time

    started = time.perf_counter()
    summary = precode(store, classifier)
    assert summary.proposed == 1
    assert time.perf_counter() - started >= 0.05


def test_persistent_failure_is_stored_then_retried_next_run(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    store = make_project(tmp_path / "p.db", n=2)
    # Enough 503s to exhaust one item's attempts (max_attempts=2 below).
    fake.add_faults("503", "503", "503", "503")
    classifier = classifier_for(fake, max_attempts=2, concurrency=1)
    summary = precode(store, classifier)
    assert summary.failed == 2 and summary.proposed == 0
    failed = rows(store)
    assert {row["status"] for row in failed} == {"failed"}
    assert all("503" in row["error"] or "InternalServerError" in row["error"] for row in failed)

    second = precode(store, classifier_for(fake))
    assert second.proposed == 2 and second.failed == 0
    assert set(store.current_proposals()) == {"r000", "r001"}


def test_invalid_answers_exhausting_reasks_are_failed_rows(
    tmp_path: Path, fake: FakeOpenAI
) -> None:
    store = make_project(tmp_path / "p.db", n=1)
    fake.add_faults("bad_code", "bad_code", "bad_code")
    classifier = classifier_for(fake, validation_retries=2)
    summary = precode(store, classifier)
    assert summary.failed == 1
    (row,) = rows(store)
    assert row["status"] == "failed"
    assert "3 attempt" in row["error"]
    assert len(fake.chat_requests) == 3
    # The re-asks carried the validation error back to the model.
    last_messages = fake.chat_requests[-1]["messages"]
    assert any("not_a_code_in_the_codebook" in str(m.get("content")) for m in last_messages)


def test_quote_not_in_text_is_reasked_with_the_error(tmp_path: Path, fake: FakeOpenAI) -> None:
    store = make_project(tmp_path / "p.db", n=1)
    fake.add_faults("bad_quote")
    summary = precode(store, classifier_for(fake))
    assert summary.proposed == 1
    assert len(fake.chat_requests) == 2
    assert "is not a quote from response" in str(fake.chat_requests[1]["messages"])
    proposal = store.current_proposals()["r000"].proposal
    assert proposal is not None
    assert (
        proposal.themes[0].evidence and proposal.themes[0].evidence in store.response("r000").text
    )


def test_batch_with_missing_ids_gets_single_item_retries(tmp_path: Path, fake: FakeOpenAI) -> None:
    store = make_project(tmp_path / "p.db", n=9)
    fake.add_faults("drop_id", "drop_id", "drop_id")
    classifier = classifier_for(fake, batch_size=3, concurrency=1)
    summary = precode(store, classifier)
    assert summary.proposed == 9 and summary.failed == 0
    assert_each_once(store, 9)
    # 3 questions x 3 responses -> 3 batched calls, each missing one id -> 3 single calls.
    assert len(fake.chat_requests) == 6
    batched = [
        r
        for r in fake.chat_requests
        if r["tools"][0]["function"]["name"].startswith("CodedResponses_")
    ]
    assert len(batched) == 3
