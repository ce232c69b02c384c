"""``coder serve``: the review app in reviewers' browsers, one app process per connection.

Built on textual-serve (``Server``), which has no authentication of its own. This module
adds it where textual-serve builds its answers:

- ``GET /`` (the page that opens the app) and ``GET /ws`` (the websocket that starts an app
  process) need a signed-in reviewer; otherwise HTTP 403 and no process is started;
- ``POST /sign-in`` checks a reviewer name and token (coder/reviewers.py: hashed, compared
  in constant time) and sets an HttpOnly, SameSite=Strict cookie. The sign-in link carries
  the token in its fragment, which browsers never send, and the page posts it: the token
  reaches neither the request line nor any access log;
- each connection runs ``coder review --served --reviewer NAME`` for the reviewer the
  token belongs to, so every decision is recorded under that name and the browser cannot
  choose another. The token never appears in the command (``ps``) or its environment;
- the websocket must come from the page's own origin (no cross-site use of the cookie).

Every request re-checks the cookie against the project file, so ``coder reviewers revoke``
takes effect at the next page load or connection. Sign-ins and session ends are logged to
stderr; aiohttp's access log is off (it would print query strings).
"""

from __future__ import annotations

import asyncio
import html
import re
import shlex
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from coder import reviewers
from coder.errors import CoderError
from coder.store import Store

COOKIE_NAME = "coder_session"
SHUTDOWN_SECONDS = 5.0
#: How often an open session re-checks that its token still works.
REVOKE_CHECK_SECONDS = 10.0


@dataclass
class ServedSession:
    """One browser connection and its app process."""

    reviewer: str
    remote: str
    started: datetime


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;background:#0c181f;color:#eee;margin:3em}"
        "input{display:block;margin:.5em 0 1em;padding:.4em;width:22em}"
        "button{padding:.5em 2em}.error{color:#f88}</style></head><body>"
        f"{body}</body></html>"
    )


_SIGN_IN_FORM = """
<h1>coder review: sign in</h1>
{message}
<form id="sign-in" method="post" action="sign-in">
  <label>Reviewer name <input name="reviewer" autocomplete="username" required></label>
  <label>Token <input name="token" type="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in</button>
</form>
<p>Your sign-in link comes from the project lead (<code>coder reviewers add NAME</code>).</p>
<script>
// A sign-in link carries name and token after '#': fill the form, drop them from the
// address bar and history, and post them.
(function () {
  var fields = new URLSearchParams(window.location.hash.slice(1));
  if (!fields.get("token")) { return; }
  var form = document.getElementById("sign-in");
  form.reviewer.value = fields.get("reviewer") || "";
  form.token.value = fields.get("token");
  history.replaceState(null, "", window.location.pathname + window.location.search);
  form.submit();
})();
</script>
"""


def sign_in_page(message: str = "") -> str:
    """The sign-in page (the answer to any request without a valid sign-in)."""
    note = f"<p class='error'>{html.escape(message)}</p>" if message else ""
    return _page("coder review: sign in", _SIGN_IN_FORM.replace("{message}", note))


def _index_template() -> str:
    """textual-serve's page, without its web-font link: nothing reaches a third party."""
    text = (resources.files("textual_serve") / "templates" / "app_index.html").read_text("utf-8")
    return re.sub(r"<link[^>]*fonts\.googleapis\.com[^>]*>", "", text, flags=re.DOTALL)


def app_command(
    db_path: Path, reviewer: str, *, blind: bool = False, order: str | None = None
) -> str:
    """The shell command textual-serve runs for one reviewer's connection (no token)."""
    reviewers.check_name(reviewer)
    parts = [sys.executable, "-m", "coder", "review", "--served", "--db", str(db_path)]
    parts += ["--reviewer", reviewer]
    if blind:
        parts.append("--blind")
    if order:
        parts += ["--order", order]
    # textual-serve runs it through a shell; exec makes the app that shell's process.
    return "exec " + " ".join(shlex.quote(part) for part in parts)


async def _stop(app_service: AppService) -> None:
    """Tell an app process to quit and wait for it, at most ``SHUTDOWN_SECONDS``; then kill it.

    textual-serve's ``stop()`` waits, without a limit, for the process's output to end, and a
    stop cancelled half-way cancels its relay task with it, after which the session was never
    removed (the reviewer shown as signed in, with a lease): the revocation test in
    tests/test_serve.py failed that way about one run in ten. Shielded, bounded and
    followed by a kill, it passed 48 runs of 48."""
    if app_service._task is None:
        return
    stopping = asyncio.ensure_future(app_service.stop())
    try:
        # shielded: the timeout must not cancel the stop (and textual-serve's relay task
        # under it), whose end is awaited below once the process is gone.
        await asyncio.wait_for(asyncio.shield(stopping), SHUTDOWN_SECONDS)
        return
    except TimeoutError:
        process = app_service._process
        if process is not None and process.returncode is None:
            process.kill()
    await stopping


async def _reap(app_service: AppService) -> None:
    """Wait for an app process that was told to quit; kill it if it does not (textual-serve
    never waits for its processes, which would leave them behind)."""
    process = app_service._process
    if process is None or process.returncode is not None:
        return
    try:
        await asyncio.wait_for(process.wait(), SHUTDOWN_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()


class ReviewServer(Server):
    """textual-serve's server with sign-in, one reviewer per app process, and a log."""

    def __init__(
        self,
        db_path: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        public_url: str | None = None,
        blind: bool = False,
        order: str | None = None,
        log: TextIO | None = None,
    ) -> None:
        super().__init__("coder review", host=host, port=port, public_url=public_url)
        self.db_path = Path(db_path)
        self.blind = blind
        self.order = order
        self.log = log or sys.stderr
        self.store = Store(self.db_path)
        self.title = "coder review"
        self.sessions: dict[str, ServedSession] = {}
        #: App processes started since the server started (tests check refusals start none).
        self.processes_started = 0
        self._secure_cookie = (public_url or "").startswith("https://")
        self._public_url_given = public_url is not None
        self.revoke_check_seconds = REVOKE_CHECK_SECONDS

    # --- sign-in ---------------------------------------------------------------------
    def signed_in(self, request: web.Request) -> str | None:
        """The reviewer whose valid token is in the request's cookie, else None."""
        value = request.cookies.get(COOKIE_NAME, "")
        name, _, token = value.partition(":")
        if not name or not token:
            return None
        return name if reviewers.check_token(self.store, name, token) else None

    def _same_origin(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser: the cookie check alone applies
        allowed = {request.host, urlsplit(self.public_url).netloc}
        return urlsplit(origin).netloc in allowed

    async def handle_sign_in(self, request: web.Request) -> web.StreamResponse:
        """``POST /sign-in``: check name and token, set the session cookie, open the app."""
        if not self._same_origin(request):  # no signing a visitor in from another site
            raise web.HTTPForbidden(text="sign in from the sign-in page")
        form = await request.post()
        name, token = str(form.get("reviewer", "")).strip(), str(form.get("token", "")).strip()
        if not reviewers.check_token(self.store, name, token):
            self._log(f"refused a sign-in from {request.remote}: wrong reviewer name or token")
            return web.Response(
                text=sign_in_page("That reviewer name and token do not match."),
                status=403,
                content_type="text/html",
            )
        response = web.HTTPSeeOther(location="./")
        response.set_cookie(
            COOKIE_NAME,
            f"{name}:{token}",
            httponly=True,
            samesite="Strict",
            secure=self._secure_cookie,
            path="/",
        )
        return response

    async def handle_index(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        """The app page for a signed-in reviewer; the sign-in page (403) for anyone else."""
        if self.signed_in(request) is None:
            return web.Response(text=sign_in_page(), status=403, content_type="text/html")
        # Without --public-url, links follow the address the browser used (so --host
        # 0.0.0.0 works from other machines); textual-serve would write http://0.0.0.0.
        base = self.public_url if self._public_url_given else f"{request.scheme}://{request.host}"
        websocket = ("wss:" if base.startswith("https:") else "ws:") + base.split(":", 1)[1]
        context = {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": websocket + str(request.app.router["websocket"].url_for()),
            "config": {"static": {"url": base + "/static/"}},
            "application": {"name": self.title},
        }
        response = aiohttp_jinja2.render_template("app_index.html", request, context)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def handle_download(self, request: web.Request) -> web.StreamResponse:
        """Files the app delivers (exports), for signed-in reviewers only."""
        if self.signed_in(request) is None:
            raise web.HTTPForbidden(text="sign in first")
        return await super().handle_download(request)

    # --- sessions ----------------------------------------------------------------------
    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """Start one app process for the signed-in reviewer and relay it (as textual-serve
        does), after refusing, with no process started, anyone not signed in."""
        reviewer = self.signed_in(request)
        if reviewer is None or not self._same_origin(request):
            self._log(f"refused a session from {request.remote}: not signed in")
            raise web.HTTPForbidden(text="sign in first")
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        app_service: AppService | None = None
        try:
            await websocket.prepare(request)
            app_service = AppService(
                app_command(self.db_path, reviewer, blind=self.blind, order=self.order),
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=websocket.close,  # type: ignore[arg-type]  # returns a bool, unused
                download_manager=self.download_manager,
                debug=self.debug,
            )
            await app_service.start(width, height)
            self.processes_started += 1
            self.sessions[app_service.app_service_id] = ServedSession(
                reviewer, str(request.remote), datetime.now(UTC)
            )
            reviewers.record_sign_in(self.store, reviewer)
            self._log(f"{reviewer} signed in from {request.remote} ({self._who()})")
            watch = asyncio.create_task(self._end_if_revoked(websocket, request))
            try:
                await self._process_messages(websocket, app_service)
            finally:
                watch.cancel()
                await _stop(app_service)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as error:  # one broken session must not stop the server
            self._log(f"{reviewer}'s session failed: {error}")
        finally:
            if app_service is not None:
                await _stop(app_service)
                await _reap(app_service)
                session = self.sessions.pop(app_service.app_service_id, None)
                if session is not None:
                    minutes = (datetime.now(UTC) - session.started).total_seconds() / 60
                    self._log(f"{reviewer}'s session ended after {minutes:.1f} min ({self._who()})")
        return websocket

    async def _end_if_revoked(self, websocket: web.WebSocketResponse, request: web.Request) -> None:
        # `coder reviewers revoke` ends an open session too, within REVOKE_CHECK_SECONDS.
        while not websocket.closed:
            await asyncio.sleep(self.revoke_check_seconds)
            if self.signed_in(request) is None:
                self._log(f"ending a session of {request.remote}: its token was revoked")
                await websocket.close()
                return

    def _who(self) -> str:
        names = sorted(session.reviewer for session in self.sessions.values())
        return f"{len(names)} session(s) open" + (f": {', '.join(names)}" if names else "")

    def _log(self, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        print(f"{stamp} {text}", file=self.log, flush=True)

    # --- the web application -----------------------------------------------------------
    async def _make_app(self) -> web.Application:
        app = web.Application()
        aiohttp_jinja2.setup(app, loader=jinja2.DictLoader({"app_index.html": _index_template()}))
        app.add_routes(
            [
                web.get("/", self.handle_index, name="index"),
                web.post("/sign-in", self.handle_sign_in, name="sign_in"),
                web.get("/ws", self.handle_websocket, name="websocket"),
                web.get("/download/{key}", self.handle_download, name="download"),
                web.static("/static", self.statics_path, name="static"),
            ]
        )
        app.on_shutdown.append(self._log_stop)
        return app

    async def _log_stop(self, _app: web.Application) -> None:
        # aiohttp then cancels each open session's handler, whose cleanup quits its app
        # process (drafts committed, leases released) and waits for it.
        self._log(f"stopping ({self._who()})")

    def serve_forever(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Listen until interrupted (Ctrl+C / SIGTERM); ``on_ready`` gets the public URL."""
        try:
            listener = socket.create_server((self.host, self.port))
        except OSError as error:
            raise CoderError(f"cannot listen on {self.host}:{self.port}: {error.strerror}") from None
        port = listener.getsockname()[1]
        if self.port == 0 or self.public_url.endswith(":0"):
            # Port 0 asks the system for a free port: the page's links need the real one.
            self.port = port
            self.public_url = self.public_url.rsplit(":", 1)[0] + f":{port}"
        if on_ready is not None:
            on_ready(self.public_url)
        try:
            web.run_app(
                self._make_app(),
                sock=listener,
                access_log=None,
                print=None,
                shutdown_timeout=SHUTDOWN_SECONDS,
                handle_signals=True,
            )
        finally:
            self.store.close()
