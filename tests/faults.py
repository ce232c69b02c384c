"""Kill a real coder process at the moment a condition holds (no fixed sleeps)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def kill_when(command: list[str], condition: Callable[[], bool], cwd: Path | None = None) -> str:
    """Start ``command``; SIGKILL it as soon as ``condition()`` holds. Returns its stderr.

    Fails if the process ends (or 120 s pass) before the condition is seen.
    """
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    deadline = time.monotonic() + 120
    killed = False
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if condition():
                process.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.002)  # a poll of the condition, not a wait on the clock
    finally:
        if process.poll() is None and not killed:
            process.kill()
        process.wait(timeout=60)
        assert process.stderr is not None
        errors = process.stderr.read().decode()
        process.stderr.close()
    assert killed, f"the command ended before the condition held: {errors}"
    return errors
