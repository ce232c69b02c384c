"""Model calls run on uvloop when it is installed, on asyncio's loop otherwise."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

from coder import event_loop
from coder.llm.classifier import LLMClassifier
from coder.store import Store
from tests.llm_fake_server import FakeOpenAI, make_project

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed")
def test_uvloop_runs_the_calls_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.ENV_VAR, raising=False)
    assert event_loop.loop_name() == "uvloop"
    assert event_loop.run(_loop_module()).startswith("uvloop")


def test_asyncio_when_asked_or_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.ENV_VAR, "asyncio")
    assert event_loop.loop_factory() is None
    assert event_loop.run(_loop_module()).startswith("asyncio")
    monkeypatch.delenv(event_loop.ENV_VAR)
    monkeypatch.setattr(sys, "platform", "win32")
    assert event_loop.loop_name() == "asyncio"


def test_asyncio_when_uvloop_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.ENV_VAR, raising=False)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert event_loop.loop_factory() is None
    assert event_loop.run(_loop_module()).startswith("asyncio")


@pytest.mark.parametrize("loop", ["asyncio", "default"])
def test_propose_gives_the_same_answers_on_either_loop(
    loop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole call path (instructor, openai, httpx, our transport, the audit log) works
    on the loop chosen; the fake server answers deterministically."""
    if loop == "asyncio":
        monkeypatch.setenv(event_loop.ENV_VAR, "asyncio")
    else:
        monkeypatch.delenv(event_loop.ENV_VAR, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loop-test-local")
    db = tmp_path / "p.db"
    make_project(db, n=6).close()
    logged: list[dict[str, object]] = []
    with FakeOpenAI() as fake, Store(db) as store:
        classifier = LLMClassifier(
            model="gpt-4o-mini",
            base_url=fake.base_url,
            concurrency=4,
            shortlist=False,
            call_logger=lambda **fields: logged.append(fields),
        )
        responses = list(store.responses())
        results = classifier.propose(responses, store.codebook()[1])
    assert [r.response_id for r in results] == [r.id for r in responses]
    assert all(r.ok for r in results)
    assert len(logged) == len(responses) == classifier.stats.calls
    assert all(entry["response"]["status"] == 200 for entry in logged)  # type: ignore[index]
    assert classifier.stats.event_loop == event_loop.loop_name()
