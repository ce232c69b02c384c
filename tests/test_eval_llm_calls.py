"""``coder eval --backend openai`` traces its model calls like ``coder precode`` does."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from coder.cli import cli
from coder.store import Store
from tests.llm_fake_server import FakeOpenAI
from tests.test_eval_local import CODEBOOK, _items


def test_eval_with_the_openai_backend_logs_every_call_under_the_stored_runs_id(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "gold"
    folder.mkdir()
    (folder / "codebook.json").write_text(json.dumps(CODEBOOK))
    items = _items("dev", 0, 1)
    (folder / "dev.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    db = tmp_path / "eval.db"
    with FakeOpenAI() as fake:
        result = CliRunner().invoke(
            cli,
            ["eval", str(folder), "--backend", "openai", "--model", "gpt-4o-mini", "--db", str(db)],
            env={"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-local-placeholder"},
            catch_exceptions=False,
        )
        requests = len(fake.chat_requests)
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
    folder = tmp_path / "gold"
    folder.mkdir()
    (folder / "codebook.json").write_text(json.dumps(CODEBOOK))
    items = _items("dev", 0, 1)[:3]
    (folder / "dev.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    db = tmp_path / "eval.db"
    with FakeOpenAI() as fake:
        result = CliRunner().invoke(
            cli,
            [
                "eval",
                str(folder),
                "--backend",
                "openai",
                "--model",
                "m",
                "--db",
                str(db),
                "--no-store",
            ],
            env={"OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "sk-local-placeholder"},
            catch_exceptions=False,
        )
    assert result.exit_code == 0, result.output
    assert not db.exists()
