"""``coder eval --backend openai`` traces its model calls like ``coder precode`` does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from coder.cli import cli
from coder.store import Store
from tests.llm_fake_server import FakeOpenAI
from tests.test_eval_local import CODEBOOK, _items


def eval_openai(
    tmp_path: Path, items: list[dict[str, Any]], *extra: str, faults: tuple[str, ...] = ()
) -> tuple[Any, int]:
    """Run ``coder eval`` on a gold folder of ``items`` against the fake server.

    Returns the CLI result and how many chat requests the server received.
    """
    folder = tmp_path / "gold"
    folder.mkdir()
    (folder / "codebook.json").write_text(json.dumps(CODEBOOK))
    (folder / "dev.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    args = ["eval", str(folder), "--backend", "openai", "--model", "gpt-4o-mini", *extra]
    with FakeOpenAI() as fake:
        fake.add_faults(*faults)
        result = CliRunner().invoke(
            cli,
            args,
            env={"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-local-placeholder"},
            catch_exceptions=False,
        )
        return result, len(fake.chat_requests)


def test_eval_with_the_openai_backend_logs_every_call_under_the_stored_runs_id(
    tmp_path: Path,
) -> None:
    db = tmp_path / "eval.db"
    result, requests = eval_openai(tmp_path, _items("dev", 0, 1), "--db", str(db))
    assert result.exit_code == 0, result.output
    assert requests > 0
    with Store(db) as store:
        (run,) = store.eval_runs()
        calls = list(store.db.query("select * from llm_calls"))
    assert len(calls) == requests  # one row per HTTP call, none lost
    assert {call["run_id"] for call in calls} == {run["params"]["llm_run_id"]}
    assert all(call["model"] == "gpt-4o-mini" for call in calls)
    assert "sk-local-placeholder" not in json.dumps(calls)


def test_eval_with_no_store_writes_no_project_file(tmp_path: Path) -> None:
    db = tmp_path / "eval.db"
    result, _ = eval_openai(tmp_path, _items("dev", 0, 1)[:3], "--db", str(db), "--no-store")
    assert result.exit_code == 0, result.output
    assert not db.exists()


def test_a_failed_item_is_reported_once_in_plain_words_without_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A 401 that quotes the Authorization header: not retried, and not worth two raw log
    # lines from the client library per item.
    db = tmp_path / "eval.db"
    items = _items("dev", 0, 1)[:3]
    result, _ = eval_openai(tmp_path, items, "--db", str(db), faults=("echo_auth",))
    assert result.exit_code == 0, result.output
    assert "1 item(s) failed and are scored as predicting nothing." in result.output
    assert result.output.count("  failed dev") == 1
    assert "AuthenticationError" in result.output
    # instructor's own "API call failed ..." records would print the error twice more.
    assert not [record for record in caplog.records if record.name.startswith("instructor")]
    assert "sk-local-placeholder" not in result.output
