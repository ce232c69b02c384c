"""An API key echoed inside a *successful* LLM answer is never stored or printed.

A server (or a proxy, or a model obeying an injected instruction) may put the key it was
sent into the model name or the rationale of a good answer (issue 15, item 4). The run
must store its proposals with the key masked: a dump of every table holds no trace of it.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from coder.llm.secrets import MASK, scrub
from tests.llm_fake_server import FakeOpenAI, coder_executable, make_project, precode_args

SECRET = "sk-echo-SECRET-5a4b3c2d1e0f9876"


class EchoingServer(FakeOpenAI):
    """Answers correctly, but quotes the key in the model name and every rationale."""

    def completion(self, body: dict[str, Any], fault: str | None = None) -> dict[str, Any]:
        answer = super().completion(body, fault)
        answer["model"] = f"gpt-echo key={SECRET}"
        for choice in answer["choices"]:
            message = choice["message"]
            for call in message.get("tool_calls") or []:
                call["function"]["arguments"] = call["function"]["arguments"].replace(
                    "fake server coding", f"coded with Bearer {SECRET}"
                )
        return answer


def test_key_echoed_in_a_good_answer_is_stored_nowhere(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    make_project(db, n=4).close()
    with EchoingServer(host="127.0.0.2") as fake:
        finished = subprocess.run(
            [coder_executable(), *precode_args(db, fake, "--concurrency", "2")],
            env={**os.environ, "OPENAI_API_KEY": SECRET},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
    assert finished.returncode == 0, finished.stderr
    assert SECRET not in finished.stdout + finished.stderr
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
        versions = {row[0] for row in conn.execute("select model_version from proposals")}
        statuses = {row[0] for row in conn.execute("select status from proposals")}
    assert statuses == {"ok"}, "the answers were good: they must be stored, masked"
    assert versions == {f"gpt-echo key={MASK}"}
    assert "coded with Bearer" in dump and SECRET not in dump
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_scrub_masks_configured_and_key_shaped_strings() -> None:
    assert scrub("key abcdefgh1234 here", ["abcdefgh1234"]) == f"key {MASK} here"
    assert scrub("token sk-proj-AAAAAAAAAAAAAAAAAAAAAAAA end") == f"token {MASK} end"
    assert scrub("Authorization: Bearer abcdefghijklmnopqrstuvwxyz") == (
        f"Authorization: Bearer {MASK}"
    )
    # Ordinary words and short configured keys are left alone.
    assert scrub("the task-based skill set", ["short"]) == "the task-based skill set"
