"""``coder serve``'s sign-in and session checks over real HTTP (aiohttp's test server) and
a real project file; the browser test (test_serve_browser.py) runs whole sessions."""

from __future__ import annotations

import io
import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("textual_serve")

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from coder import reviewers  # noqa: E402
from coder.cli import cli  # noqa: E402
from coder.errors import CoderError  # noqa: E402
from coder.serve import COOKIE_NAME, ReviewServer, app_command, sign_in_page  # noqa: E402
from coder.store import Store  # noqa: E402
from tests.review_data import build_project  # noqa: E402
from tests.serve_harness import wait_until  # noqa: E402


@pytest.fixture
def project(db_path: Path) -> tuple[Path, str]:
    with build_project(db_path, 5) as store:
        token = reviewers.add_reviewer(store, "ann")
    return db_path, token


@pytest.fixture
async def served(project: tuple[Path, str]) -> AsyncIterator[tuple[TestClient, ReviewServer, str, io.StringIO]]:
    db_path, token = project
    log = io.StringIO()
    server = ReviewServer(db_path, log=log)
    client = TestClient(TestServer(await server._make_app()))
    await client.start_server()
    server.public_url = str(client.make_url("")).rstrip("/")
    try:
        yield client, server, token, log
    finally:
        await client.close()
        server.store.close()


async def test_no_sign_in_no_page_and_no_session(served: tuple[TestClient, ReviewServer, str, io.StringIO]) -> None:
    client, server, _token, log = served
    page = await client.get("/")
    assert page.status == 403
    assert "form" in await page.text() and "websocket" not in await page.text()
    socket = await client.get("/ws", headers={"Connection": "Upgrade", "Upgrade": "websocket"})
    assert socket.status == 403
    assert (await client.get("/download/abc")).status == 403
    assert server.processes_started == 0 and server.sessions == {}
    assert "refused a session" in log.getvalue()


async def test_sign_in_sets_a_strict_cookie_and_opens_the_app(
    served: tuple[TestClient, ReviewServer, str, io.StringIO],
) -> None:
    client, server, token, log = served
    answer = await client.post("/sign-in", data={"reviewer": "ann", "token": token}, allow_redirects=False)
    assert answer.status == 303
    cookie = answer.headers["Set-Cookie"]
    assert f"{COOKIE_NAME}=ann:" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = await client.get("/")
    assert page.status == 200
    text = await page.text()
    # Links follow the address the browser used; no third-party web font.
    assert f'data-session-websocket-url="ws://{client.host}:{client.port}/ws"' in text
    assert "fonts.googleapis.com" not in text
    assert token not in log.getvalue()


@pytest.mark.parametrize("name,token", [("ann", "wrong"), ("bob", None), ("ann", ""), ("", None)])
async def test_a_wrong_name_or_token_is_refused(
    served: tuple[TestClient, ReviewServer, str, io.StringIO], name: str, token: str | None
) -> None:
    client, server, good, _log = served
    answer = await client.post(
        "/sign-in", data={"reviewer": name, "token": good if token is None else token}, allow_redirects=False
    )
    assert answer.status == 403 and "do not match" in await answer.text()
    assert "Set-Cookie" not in answer.headers
    # A forged cookie is no better.
    client.session.cookie_jar.update_cookies({COOKIE_NAME: f"{name}:{good if token is None else token}"})
    assert (await client.get("/")).status == 403
    assert server.processes_started == 0


async def test_a_revoked_token_stops_working(served: tuple[TestClient, ReviewServer, str, io.StringIO]) -> None:
    client, server, token, _log = served
    await client.post("/sign-in", data={"reviewer": "ann", "token": token})
    assert (await client.get("/")).status == 200
    reviewers.revoke_reviewer(server.store, "ann")
    assert (await client.get("/")).status == 403


async def test_a_websocket_from_another_site_is_refused(
    served: tuple[TestClient, ReviewServer, str, io.StringIO],
) -> None:
    client, server, token, _log = served
    await client.post("/sign-in", data={"reviewer": "ann", "token": token})
    answer = await client.get(
        "/ws",
        headers={"Origin": "https://evil.example", "Connection": "Upgrade", "Upgrade": "websocket"},
    )
    assert answer.status == 403 and server.processes_started == 0


def test_the_app_command_names_the_reviewer_never_the_token(project: tuple[Path, str]) -> None:
    db_path, token = project
    command = app_command(db_path, "ann", blind=True, order="import")
    words = shlex.split(command)
    assert words[0] == "exec" and words[words.index("--reviewer") + 1] == "ann"
    assert "--served" in words and "--blind" in words and token not in command
    with pytest.raises(CoderError, match="reviewer name"):
        app_command(db_path, "ann; rm -rf /")


def test_sign_in_page_escapes_its_message() -> None:
    assert "<b>" not in sign_in_page("<b>x</b>") and "&lt;b&gt;" in sign_in_page("<b>x</b>")


def test_serve_refuses_a_project_without_responses(db_path: Path) -> None:
    Store(db_path).close()
    result = CliRunner().invoke(cli, ["serve", "--db", str(db_path), "--port", "0"])
    assert result.exit_code == 1 and "no responses yet" in result.stderr


async def test_a_sign_in_posted_from_another_site_is_refused(
    served: tuple[TestClient, ReviewServer, str, io.StringIO],
) -> None:
    client, _server, token, _log = served
    answer = await client.post(
        "/sign-in",
        data={"reviewer": "ann", "token": token},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert answer.status == 403 and "Set-Cookie" not in answer.headers


@pytest.mark.slow
async def test_revoking_a_token_ends_the_open_session(
    served: tuple[TestClient, ReviewServer, str, io.StringIO],
) -> None:
    client, server, token, log = served
    server.revoke_check_seconds = 0.05
    await client.post("/sign-in", data={"reviewer": "ann", "token": token})
    socket = await client.ws_connect("/ws?width=100&height=30")
    # The app process draws its first screen, then the token is revoked.
    first = await socket.receive(timeout=60)
    assert first.type.name == "BINARY" and server.processes_started == 1
    reviewers.revoke_reviewer(server.store, "ann")
    while not socket.closed:
        await socket.receive(timeout=60)
    await wait_until(lambda: not server.sessions, what="the session to end")
    assert "its token was revoked" in log.getvalue() and "ann signed in" in log.getvalue()
    assert (await client.get("/")).status == 403
