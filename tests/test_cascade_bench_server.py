"""The cascade benchmark's gold server never outlives the benchmark.

A benchmark killed by SIGTERM stops its server in ``finally`` (exit_on_sigterm turns the
signal into SystemExit); one killed by SIGKILL runs nothing, so the server also stops when
its stdin (a pipe held by the benchmark) closes.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parent.parent


def _gold(tmp_path: Path) -> Path:
    path = tmp_path / "gold.jsonl"
    item = {"id": "a1", "text": "Kind staff", "labels": [], "stance": None, "relevant": True}
    path.write_text(json.dumps(item) + "\n", encoding="utf-8")
    return path


def _listening(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=5):
            return True
    except OSError:
        return False


def test_the_server_stops_when_its_stdin_closes(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "llm_gold_server.py"), str(_gold(tmp_path)),
         "--until-stdin-closes"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None and server.stdin is not None
        url = server.stdout.readline().strip()
        assert _listening(url)
        server.stdin.close()  # what the kernel does when the parent dies, however it dies
        assert server.wait(timeout=60) == 0
        assert not _listening(url)
    finally:
        server.kill()
        server.wait()


SCRIPT = """
import sys, threading
from pathlib import Path
sys.path.insert(0, {benchmarks!r})
from bench_cascade import exit_on_sigterm, gold_server
exit_on_sigterm()
with gold_server(Path({gold!r}), 0.1) as url:
    print(url, flush=True)
    threading.Event().wait()
"""


def test_a_benchmark_killed_by_sigterm_stops_its_server(tmp_path: Path) -> None:
    script = SCRIPT.format(benchmarks=str(REPO / "benchmarks"), gold=str(_gold(tmp_path)))
    bench = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert bench.stdout is not None
        url = bench.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and _listening(url)
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(timeout=60) == 128 + signal.SIGTERM
        # The server was terminated and waited for before the benchmark exited.
        assert not _listening(url)
    finally:
        bench.kill()
        bench.wait()
