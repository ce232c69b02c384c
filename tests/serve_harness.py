"""Run a real ``coder serve`` for the browser tests and the benchmark, and watch its file."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from coder.leases import LiveLease, live_leases
from coder.store import Store


class ServeProcess:
    """``coder serve --port 0`` as a subprocess; its stderr lines are kept in ``log``."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, log: list[str]) -> None:
        self.process = process
        self.url = url
        self.log = log

    @classmethod
    async def start(cls, db_path: Path, *extra: str, timeout: float = 60.0) -> ServeProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "coder", "serve", "--db", str(db_path), "--port", "0", *extra,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert process.stderr is not None
        log: list[str] = []
        deadline = time.monotonic() + timeout
        url = None
        while url is None:
            line = await asyncio.wait_for(process.stderr.readline(), deadline - time.monotonic())
            if not line:
                raise RuntimeError("coder serve exited:\n" + "".join(log))
            log.append(line.decode())
            match = re.search(r" on (http://\S+)", log[-1])
            url = match.group(1) if match else None
        server = cls(process, url, log)
        asyncio.get_running_loop().create_task(server._collect(process.stderr))
        # The socket is bound before the line is printed; wait until aiohttp answers.
        import aiohttp

        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(url) as response:
                        if response.status == 403:
                            break
                except aiohttp.ClientConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
        return server

    async def _collect(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.log.append(line.decode())

    async def stop(self) -> int:
        """Ctrl+C, as a person stops it; its sessions quit their app processes."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode or 0


async def wait_until(
    condition: Callable[[], object], timeout: float = 60.0, what: str = "a condition"
) -> object:
    """Poll ``condition`` until it is truthy (waiting for a state, never a fixed delay)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def leases_of(db_path: Path) -> dict[str, list[LiveLease]]:
    """Live leases by reviewer, read from the project file."""
    with Store(db_path) as store:
        result: dict[str, list[LiveLease]] = {}
        for lease in live_leases(store):
            result.setdefault(lease.reviewer, []).append(lease)
        return result


def served_app_processes(db_path: Path) -> list[str]:
    """Command lines of running ``coder review --served`` processes for this project."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "--served" in command and str(db_path) in command:
            found.append(command)
    return found
