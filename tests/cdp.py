"""A small Chrome DevTools Protocol driver: headless Chromium, one page per reviewer.

Playwright's browser download does not work on our machines, and Debian's ``chromium``
does; this speaks the protocol over aiohttp's websocket client, which ``coder serve``
already brings. Each page lives in its own browser context (its own cookie jar), so two
reviewers can be signed in at once. A script added to every page records the websocket
frames the review app sends and receives, with the page's clock, so tests can wait for a
redraw and the benchmark can time accept -> next item as the browser sees it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

#: Wraps window.WebSocket before the page's scripts run: frames in, keys out, timestamped.
RECORD_FRAMES = """
(() => {
  const Native = window.WebSocket;
  window.__frames = [];
  window.__sent = [];
  window.__sockets = 0;
  const decoder = new TextDecoder();
  function Recorded(url, protocols) {
    const socket = protocols === undefined ? new Native(url) : new Native(url, protocols);
    window.__sockets += 1;
    socket.addEventListener("message", (event) => {
      const text = typeof event.data === "string" ? event.data : decoder.decode(event.data);
      window.__frames.push([performance.now(), text]);
    });
    const send = socket.send.bind(socket);
    socket.send = (data) => { window.__sent.push([performance.now(), String(data)]); send(data); };
    return socket;
  }
  Recorded.prototype = Native.prototype;
  for (const name of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) { Recorded[name] = Native[name]; }
  window.WebSocket = Recorded;
})();
"""

#: (key, code, Windows virtual key code, text) for the keys the tests press.
_SPECIAL_KEYS = {
    "enter": ("Enter", "Enter", 13, "\r"),
    "escape": ("Escape", "Escape", 27, ""),
    "space": (" ", "Space", 32, " "),
}


def find_chromium() -> str | None:
    """The Chromium executable, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(RuntimeError):
    """The browser answered a command with an error, or went away."""


class Browser:
    """One headless Chromium process and its DevTools websocket."""

    def __init__(self, process: asyncio.subprocess.Process, profile: str) -> None:
        self.process = process
        self.profile = profile
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def launch(cls, executable: str, timeout: float = 30.0) -> Browser:
        """Start Chromium headless (as root it needs --no-sandbox) and connect to it."""
        profile = tempfile.mkdtemp(prefix="coder-cdp-")
        process = await asyncio.create_subprocess_exec(
            executable,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        browser = cls(process, profile)
        assert process.stderr is not None
        url = None
        deadline = time.monotonic() + timeout
        while url is None:
            line = await asyncio.wait_for(process.stderr.readline(), deadline - time.monotonic())
            if not line:
                await browser.close()
                raise CDPError("chromium exited before it listened for DevTools")
            match = re.search(rb"DevTools listening on (ws://\S+)", line)
            url = match.group(1).decode() if match else None
        # Keep draining stderr so Chromium never blocks on a full pipe.
        asyncio.get_running_loop().create_task(_drain(process.stderr))
        browser._http = aiohttp.ClientSession()
        browser._socket = await browser._http.ws_connect(url, max_msg_size=0)
        browser._reader = asyncio.get_running_loop().create_task(browser._read())
        return browser

    async def _read(self) -> None:
        assert self._socket is not None
        async for message in self._socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CDPError("the browser closed the DevTools connection"))

    async def send(
        self, method: str, session_id: str | None = None, timeout: float = 30.0, **params: Any
    ) -> dict[str, Any]:
        """Send one command (to a page when ``session_id`` is given) and return its result."""
        assert self._socket is not None
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session_id is not None:
            message["sessionId"] = session_id
        await self._socket.send_str(json.dumps(message))
        answer = await asyncio.wait_for(future, timeout)
        if "error" in answer:
            raise CDPError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def new_page(self, width: int = 1280, height: int = 800) -> Page:
        """A page in a browser context of its own (separate cookies), frames recorded."""
        context = await self.send("Target.createBrowserContext", disposeOnDetach=True)
        target = await self.send(
            "Target.createTarget",
            url="about:blank",
            browserContextId=context["browserContextId"],
            width=width,
            height=height,
        )
        attached = await self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        page = Page(self, attached["sessionId"])
        await page.call("Page.enable")
        await page.call("Runtime.enable")
        await page.call("Page.addScriptToEvaluateOnNewDocument", source=RECORD_FRAMES)
        return page

    async def close(self) -> None:
        """Close the connection and end the browser process."""
        if self._socket is not None:
            await self._socket.close()
        if self._http is not None:
            await self._http.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


class Page:
    """One browser tab, driven through its DevTools session."""

    def __init__(self, browser: Browser, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, session_id=self.session_id, **params)

    async def navigate(self, url: str) -> None:
        """Open ``url`` and wait until its document has loaded."""
        await self.call("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if a promise)."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise CDPError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll a JavaScript condition until it is truthy (a page change, not a delay)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = await self.evaluate(expression)
            except CDPError:
                value = None  # the page is between documents
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout} s: {expression}")
            await asyncio.sleep(0.02)

    async def press(self, key: str) -> None:
        """Type one key into the focused element, as a person would (down, char, up)."""
        if key in _SPECIAL_KEYS:
            name, code, virtual, text = _SPECIAL_KEYS[key]
        else:
            name, text = key, key
            code = f"Key{key.upper()}" if key.isalpha() else f"Digit{key}" if key.isdigit() else ""
            virtual = ord(key.upper())
        common = {"key": name, "code": code, "windowsVirtualKeyCode": virtual}
        await self.call("Input.dispatchKeyEvent", type="keyDown", text=text, **common)
        await self.call("Input.dispatchKeyEvent", type="keyUp", **common)

    async def focus_terminal(self) -> None:
        """Put the keyboard focus in the terminal (xterm.js's hidden textarea)."""
        await self.wait_for("document.querySelector('.xterm-helper-textarea') !== null")
        await self.evaluate("document.querySelector('.xterm-helper-textarea').focus()")

    async def frame_count(self) -> int:
        return int(await self.evaluate("window.__frames ? window.__frames.length : 0"))

    async def frames_since(self, start: int) -> list[tuple[float, str]]:
        """Websocket frames received from index ``start`` on: (page time ms, text)."""
        frames = await self.evaluate(f"window.__frames.slice({start})")
        return [(float(stamp), str(text)) for stamp, text in frames]

    async def last_sent(self) -> tuple[float, str] | None:
        sent = await self.evaluate("window.__sent.length ? window.__sent[window.__sent.length - 1] : null")
        return (float(sent[0]), str(sent[1])) if sent else None


def chromium_or_skip() -> str:
    """The Chromium path, or skip the calling test (pytest) when it is not installed."""
    import pytest

    path = os.environ.get("CODER_CHROMIUM") or find_chromium()
    if not path or not Path(path).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path
