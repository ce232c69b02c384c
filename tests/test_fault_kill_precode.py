"""Fault matrix: `coder precode` SIGKILLed at 20 random (seeded) moments of a 2,000-response run.

Each kill is followed by another run, which resumes; after a last, unkilled run:
* every response has exactly one current proposal (exactly one ``ok`` row overall);
* no run stored a response twice (rows per response per ``run_id`` <= 1);
* the calls paid for are bounded: at most the requests in flight at each kill
  (concurrency) are made twice.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coder.store import Store
from tests.llm_fake_server import FakeOpenAI, coder_executable, make_project, precode_args

N = 2000
KILLS = 20
CONCURRENCY = 16
SEED = 20


def ok_responses(db: Path) -> int:
    with Store(db) as store:
        row = store.db.execute(
            "select count(distinct response_id) from proposals where status = 'ok'"
        ).fetchone()
    return int(row[0])


@pytest.mark.slow
def test_twenty_kills_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    make_project(db, n=N).close()
    rng = random.Random(SEED)
    with FakeOpenAI(latency=0.02) as fake:
        command = [coder_executable(), *precode_args(db, fake, "--concurrency", str(CONCURRENCY))]
        env = {**os.environ, "OPENAI_API_KEY": "sk-local-kill-test"}
        kills = 0
        progress = []
        # The moments: 20 seeded random points of the run, as counts of committed
        # proposals (a wall-clock moment would depend on this machine's speed).
        targets = sorted(rng.sample(range(1, N - 100), KILLS))
        for target in targets:
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                if ok_responses(db) >= target:
                    break
                time.sleep(rng.uniform(0.005, 0.05))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait(timeout=30)
            if process.stderr is not None:
                process.stderr.close()
            progress.append(ok_responses(db))
        assert kills == KILLS, f"only {kills} runs were still going when killed"
        assert progress[-1] < N, "the kills came too late to interrupt the run"

        finished = subprocess.run(
            command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300
        )
        assert finished.returncode == 0, finished.stderr
        requests = len(fake.chat_requests)

    with Store(db) as store:
        ok_per_response = dict(
            store.db.execute(
                "select response_id, count(*) from proposals where status = 'ok' "
                "group by response_id"
            ).fetchall()
        )
        assert len(ok_per_response) == N, "a response was lost"
        assert set(ok_per_response.values()) == {1}, "a response was proposed twice"
        assert len(store.current_proposals()) == N
        duplicated = store.db.execute(
            "select run_id, response_id, count(*) from proposals "
            "group by run_id, response_id having count(*) > 1"
        ).fetchall()
        assert duplicated == []
        runs = store.db.execute("select count(distinct run_id) from proposals").fetchone()[0]
        assert runs >= 2
    # Only the requests in flight at a kill can have been paid for twice.
    assert N <= requests <= N + kills * CONCURRENCY, (requests, progress)
    print(f"kills={kills} progress={progress} requests={requests}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q", "-m", "slow"]))
