"""Fault matrix: every HTTP failure mode of an OpenAI-compatible server, same invariants.

For each fault (429 with Retry-After, 500, 502, 503, connection reset, read timeout,
truncated JSON, a non-JSON body, an invented code, a made-up quote), once (transient) and
until the attempts run out (persistent), one request per response and batched:

* every response has exactly one proposal row from the run: ``ok`` with codes from the
  codebook, or ``failed`` with the error text; none lost, none duplicated;
* every HTTP attempt is in ``llm_calls`` (the server's request count), failed ones with
  their error;
* a transient fault ends with every response proposed; a persistent one with failed rows
  that the next run proposes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from coder.llm.classifier import LLMClassifier
from coder.precode import PrecodeSummary, precode
from coder.store import Store
from tests.llm_fake_server import FakeOpenAI, make_project

FAULTS = [
    "429",
    "500",
    "502",
    "503",
    "reset",
    "timeout",
    "truncated",
    "nonjson",
    "bad_code",
    "bad_quote",
]
N = 6


@pytest.fixture
def fake() -> Any:
    with FakeOpenAI(timeout_sleep=0.6) as server:
        yield server


def timeout_for(fault: str) -> dict[str, float]:
    # Short only where the fault is a read timeout (the server sleeps 0.6 s); elsewhere
    # generous, so a loaded CI machine does not add timeouts of its own.
    return {"request_timeout": 0.3} if fault == "timeout" else {}


def classifier_for(fake: FakeOpenAI, **overrides: Any) -> LLMClassifier:
    settings: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "base_url": fake.base_url,
        "mode": "tools",
        "initial_wait": 0.001,
        "max_wait": 0.01,
        "max_attempts": 3,
        "validation_retries": 2,
        "request_timeout": 5.0,
        "concurrency": 3,
        **overrides,
    }
    return LLMClassifier(**settings)


def assert_invariants(store: Store, fake: FakeOpenAI, summary: PrecodeSummary, run_id: str) -> None:
    """One row per response from this run; ok rows inside the codebook; every call logged."""
    rows = list(
        store.db.query(
            "select response_id, status, error from proposals where run_id = ?",
            [run_id],
        )
    )
    per_response = Counter(row["response_id"] for row in rows)
    all_ids = {row[0] for row in store.db.execute("select id from responses")}
    assert set(per_response) == all_ids, "a response was lost"
    assert set(per_response.values()) == {1}, f"a response was stored twice: {per_response}"
    _, codebook = store.codebook()
    for row in rows:
        if row["status"] == "ok":
            assert row["error"] is None
        else:
            assert row["status"] == "failed" and row["error"], row
    for stored in store.current_proposals().values():
        assert stored.proposal is not None
        question = store.response(stored.response_id).question
        for code in stored.proposal.theme_codes:
            assert codebook.theme(code).applies_to(question), code
    assert summary.proposed + summary.failed == len(all_ids)
    calls = list(store.db.query("select error from llm_calls where run_id = ?", [run_id]))
    assert len(calls) == len(fake.chat_requests)


@pytest.mark.parametrize("batch_size", [1, 3], ids=["single", "batched"])
@pytest.mark.parametrize("fault", FAULTS)
def test_transient_fault_is_survived_and_every_response_proposed(
    tmp_path: Path, fake: FakeOpenAI, fault: str, batch_size: int
) -> None:
    store = make_project(tmp_path / "p.db", n=N)
    fake.add_faults(fault, fault)
    classifier = classifier_for(fake, batch_size=batch_size, **timeout_for(fault))
    summary = precode(store, classifier)
    assert_invariants(store, fake, summary, classifier.run_id)
    assert summary.proposed == N and summary.failed == 0, summary.errors
    if fault in {"429", "500", "502", "503", "reset", "timeout", "truncated"}:
        logged = [row[0] for row in store.db.execute("select error from llm_calls")]
        assert sum(1 for error in logged if error) >= 2, logged


@pytest.mark.parametrize("fault", FAULTS)
def test_persistent_fault_leaves_failed_rows_that_the_next_run_proposes(
    tmp_path: Path, fake: FakeOpenAI, fault: str
) -> None:
    store = make_project(tmp_path / "p.db", n=2)
    # Enough faults for every attempt of both responses (transport x validation attempts).
    fake.add_faults(*[fault] * 20)
    classifier = classifier_for(
        fake, concurrency=1, max_attempts=2, validation_retries=1, **timeout_for(fault)
    )
    summary = precode(store, classifier)
    assert_invariants(store, fake, summary, classifier.run_id)
    assert summary.failed >= 1
    failed = list(store.db.query("select error from proposals where status = 'failed'"))
    assert failed and all(row["error"] for row in failed)

    with fake.lock:
        fake.faults.clear()
    requests_before = len(fake.chat_requests)
    second = classifier_for(fake)
    again = precode(store, second)
    assert again.failed == 0 and again.proposed == summary.failed
    assert len(store.current_proposals()) == 2
    # The second run asked only about the responses that had failed.
    assert len(fake.chat_requests) - requests_before == summary.failed
