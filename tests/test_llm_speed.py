"""The precode speed measures keep what they replace: the call log's rows, the request
bodies, the idle-connection check, and the collector's state after a run.

Issue 18: ``coder/llm_call_queries.py`` (the call log without sqlite-utils' per-insert
introspection), ``coder/llm/patches.py`` (plain-JSON check in C, direct socket check) and
``coder/llm/gc_pauses.py`` (the heap frozen during a run).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from coder.llm.classifier import LLMClassifier
from coder.llm.gc_pauses import frozen_heap
from coder.llm.patches import _is_plain_json
from coder.llm_call_queries import CallLog
from coder.precode import precode
from coder.store import Store
from tests.llm_fake_server import FakeOpenAI, make_project


@pytest.fixture
def fake() -> Any:
    with FakeOpenAI() as server:
        yield server


def classifier_for(fake: FakeOpenAI, concurrency: int = 4) -> LLMClassifier:
    return LLMClassifier(
        model="gpt-4o-mini",
        base_url=fake.base_url,
        mode="tools",
        concurrency=concurrency,
        initial_wait=0.001,
        max_wait=0.01,
    )


def test_precode_logs_every_call_as_the_store_does(
    tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-speed-test-0123456789abcdef")
    db = tmp_path / "p.db"
    make_project(db, n=12).close()
    fake.add_faults("500")
    with Store(db) as store:
        summary = precode(store, classifier_for(fake))
        assert summary.proposed == 12 and summary.failed == 0
        calls = list(store.db.query("select * from llm_calls order by id"))
        # One row per HTTP attempt, the failed one included, each with its responses.
        assert len(calls) == len(fake.chat_requests) == 13
        assert sum(1 for row in calls if row["error"]) == 1
        logged_ids = sorted(rid for row in calls if not row["error"]
                            for rid in json.loads(row["response_ids"]))
        assert logged_ids == sorted(r.id for r in store.responses())
        first = next(row for row in calls if not row["error"])
        request = json.loads(first["request"])
        assert request["kind"] == "single" and request["path"].endswith("/chat/completions")
        assert json.loads(first["response"])["status"] == 200
        assert first["prompt_tokens"] > 0 and first["created_at"]
        # The same row through Store.log_llm_call reads back identically.
        fields = {k: first[k] for k in first if k not in ("id", "created_at")}
        for key in ("request", "response", "response_ids"):
            fields[key] = json.loads(fields[key])
        fast = CallLog(store)(**fields)
        slow = store.log_llm_call(**fields)
        a, b = (next(store.db.query("select * from llm_calls where id = ?", [i]))
                for i in (fast, slow))
        assert {k: v for k, v in a.items() if k not in ("id", "created_at")} == {
            k: v for k, v in b.items() if k not in ("id", "created_at")
        }
        # The secret never reaches the log.
        assert "sk-speed-test" not in json.dumps(calls)


def test_call_log_adds_a_column_it_does_not_know(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    make_project(db, n=1).close()
    with Store(db) as store:
        log = CallLog(store)
        row_id = log(run_id="r", backend="openai", model="m", request={"a": 1}, batch_note="x")
        row = next(store.db.query("select * from llm_calls where id = ?", [row_id]))
        assert row["batch_note"] == "x" and json.loads(row["request"]) == {"a": 1}
        # Known afterwards: the next row takes the fast path into the new column.
        second = log(run_id="r", backend="openai", model="m", batch_note="y")
        assert next(store.db.query("select batch_note from llm_calls where id = ?", [second]))[
            "batch_note"
        ] == "y"


class _Model(BaseModel):
    name: str


def test_plain_json_check_sends_only_json_as_is() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "héllo \"x\"\n"}],
            "tools": [{"type": "function", "function": {"parameters": {"enum": ["a", 1, None]}}}],
            "temperature": 0.0, "stream": False}
    assert _is_plain_json(body)
    assert not _is_plain_json({**body, "when": dt.datetime(2026, 1, 1)})
    assert not _is_plain_json({**body, "messages": [_Model(name="x")]})
    assert not _is_plain_json({"set": {1, 2}})
    circular: dict[str, Any] = {}
    circular["self"] = circular
    assert not _is_plain_json(circular)


def test_heap_is_unfrozen_after_a_run(
    tmp_path: Path, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-speed-test-0123456789abcdef")
    db = tmp_path / "p.db"
    make_project(db, n=5).close()
    before = gc.get_freeze_count()
    with Store(db) as store:
        assert precode(store, classifier_for(fake, concurrency=2)).proposed == 5
    assert gc.get_freeze_count() == before == 0
    with pytest.raises(RuntimeError), frozen_heap():
        assert gc.get_freeze_count() > 0
        raise RuntimeError("a failing run still unfreezes")
    assert gc.get_freeze_count() == 0
