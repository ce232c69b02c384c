"""Fault matrix: `coder review` SIGKILLed between key presses loses no decision.

The real app runs in a pseudo-terminal (as a reviewer would run it); the test types
keys, waits until each decision is in the store (the app saves every decision at once),
and kills the process at a seeded random moment: sometimes right after a confirmed key,
sometimes in the middle of one. After each kill the project file is intact, holds every
confirmed decision (and nothing that was never typed), and the next session resumes at
the first unreviewed item, so no response is decided twice.

Two reviewer processes writing at once is tests/test_review_concurrency.py.
"""

from __future__ import annotations

import fcntl
import os
import pty
import random
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("review_tui", reason="the review app (review_tui) is not built yet")

from tests.review_data import build_project  # noqa: E402

SESSIONS = 5
SEED = 9


class PtyApp:
    """``coder review`` in a 120x40 pseudo-terminal, its output drained in a thread."""

    def __init__(self, db: Path, reviewer: str) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
        env.pop("TEXTUAL", None)
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "coder"), "review", "--db", str(db), "-r", reviewer],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self.master = master
        self.output = bytearray()
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output.extend(chunk)

    def wait_for(self, text: bytes, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = bytes(self.output[-2000:]).decode("utf-8", "replace")
                raise AssertionError(f"{text!r} never appeared; exit {self.process.poll()}\n{tail}")
            time.sleep(0.05)

    def press(self, key: bytes) -> None:
        os.write(self.master, key)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        os.close(self.master)
        self.reader.join(timeout=5)


def decisions(db: Path, reviewer: str) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return [
            (row[0], row[1])
            for row in conn.execute(
                "select response_id, action from decisions where reviewer = ? order by id",
                [reviewer],
            )
        ]


def wait_for_count(db: Path, reviewer: str, count: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(decisions(db, reviewer)) >= count:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_kill_between_key_presses_loses_no_decision(tmp_path: Path) -> None:
    db = tmp_path / "review.db"
    build_project(db, 80).close()
    rng = random.Random(SEED)
    reviewer = "kim"
    typed = confirmed = 0
    for _ in range(SESSIONS):
        app = PtyApp(db, reviewer)
        try:
            app.wait_for(b"Accept")
            for _ in range(rng.randint(2, 6)):
                key = rng.choice([b"a", b"a", b"a", b"k"])  # accept, or skip
                app.press(key)
                typed += 1
                assert wait_for_count(db, reviewer, typed), f"key {typed} never saved"
                confirmed = typed
                time.sleep(rng.uniform(0.0, 0.2))
            if rng.random() < 0.5:
                # Kill in the middle of one more key: it may or may not be saved.
                app.press(b"a")
                typed += 1
                time.sleep(rng.uniform(0.0, 0.05))
        finally:
            app.kill()
        assert app.process.returncode == -signal.SIGKILL
        with sqlite3.connect(db) as conn:
            assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        stored = decisions(db, reviewer)
        assert confirmed <= len(stored) <= typed, (confirmed, len(stored), typed)
        # Whatever was stored is the truth from here on (an in-flight key may be lost).
        typed = confirmed = len(stored)
        # Each session resumed at the first unreviewed item: nothing decided twice.
        ids = [response_id for response_id, _ in stored]
        assert len(ids) == len(set(ids)), stored
    assert confirmed >= SESSIONS * 2
