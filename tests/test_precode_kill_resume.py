"""Nothing is lost when the process dies: SIGKILL a `coder precode` run, run it again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coder.store import Store
from tests.llm_fake_server import FakeOpenAI, coder_executable, make_project, precode_args

N = 40


@pytest.mark.slow
def test_killed_run_resumes_and_every_response_is_proposed_once(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    make_project(db, n=N).close()
    with FakeOpenAI(latency=0.15) as fake:
        command = [coder_executable(), *precode_args(db, fake, "--concurrency", "2")]
        env = {**os.environ, "OPENAI_API_KEY": "sk-local-test"}
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path
        )
        # Kill once some, not all, proposals are committed.
        deadline = time.monotonic() + 120
        done = 0
        while time.monotonic() < deadline:
            time.sleep(0.2)
            with Store(db) as store:
                done = store.db.execute("select count(*) from proposals").fetchone()[0]
            if done >= 5 or process.poll() is not None:
                break
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL, (
            process.stderr.read() if process.stderr else ""
        )
        with Store(db) as store:
            before = store.db.execute("select count(*) from proposals").fetchone()[0]
        assert 0 < before < N

        finished = subprocess.run(
            command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300
        )
        assert finished.returncode == 0, finished.stderr
        requests = len(fake.chat_requests)

    with Store(db) as store:
        per_response = dict(
            store.db.execute(
                "select response_id, count(*) from proposals where status = 'ok' group by response_id"
            ).fetchall()
        )
        assert len(per_response) == N
        assert set(per_response.values()) == {1}  # exactly one ok proposal each
        assert len(store.current_proposals()) == N
    # At most the requests in flight at the kill (concurrency 2) were paid for twice.
    assert requests <= N + 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
