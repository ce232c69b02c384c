"""The event loop that model calls run on: uvloop when it is installed, else asyncio's.

At concurrency 32 the client's one thread is busy about two thirds of the time, and each
call waits for the loop between its steps (send, headers, body, close), so every
microsecond of loop overhead is paid many times over in the calls' turnaround. uvloop
runs the loop, its transports and its sockets in C (libuv). It is an optional speed-up:
installed with coder on Linux and macOS (a platform marker in pyproject.toml; it has no
Windows build), and asyncio's own loop is used wherever it is missing, or when
``CODER_EVENT_LOOP=asyncio`` asks for it (e.g. to rule it out when chasing a bug).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: environment variable: ``asyncio`` forces asyncio's own loop
ENV_VAR = "CODER_EVENT_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor when it is installed and wanted; None: asyncio's default."""
    if sys.platform == "win32" or os.environ.get(ENV_VAR, "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    new_event_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return new_event_loop


def loop_name() -> str:
    """``uvloop`` or ``asyncio``: the loop :func:`run` would use."""
    return "asyncio" if loop_factory() is None else "uvloop"


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coroutine)`` on the loop :func:`loop_factory` chooses."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coroutine)
