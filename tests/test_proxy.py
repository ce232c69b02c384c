"""Model calls go through the HTTP proxy the environment or ``--proxy`` names (NHS networks
need one), NO_PROXY sends hosts direct, and a proxy's password is never stored or printed.

The proxy is a real one: a small forwarding HTTP proxy on 127.0.0.1 that records each
request it forwards to the fake OpenAI server.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest

from coder.errors import BackendError
from coder.llm.config import LLMSettings
from coder.llm.proxy import ProxyRoutes, without_credentials
from tests.llm_fake_server import FakeOpenAI, coder_executable, make_project, precode_args

PASSWORD = "proxy-PASSWORD-7d6c5b4a"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "transfer-encoding"}


class ForwardingProxy(ThreadingHTTPServer):
    """A plain HTTP forwarding proxy (absolute-URI requests); records what it forwarded."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ForwardingProxy

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._forward()

    def do_POST(self) -> None:  # noqa: N802
        self._forward()

    def _forward(self) -> None:
        with self.server.lock:
            self.server.seen.append(
                (self.command, self.path, self.headers.get("Proxy-Authorization"))
            )
        target = urlsplit(self.path)  # a proxy is sent the absolute URL
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            content = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP | {"content-length"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)


@pytest.fixture
def proxy() -> Iterator[ForwardingProxy]:
    server = ForwardingProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any proxy variable, plus ``values``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.lower().endswith("_proxy") and k != "CODER_LLM_PROXY"
    }
    return {**env, "OPENAI_API_KEY": "sk-proxy-test", **values}


def run_precode(tmp_path: Path, fake: FakeOpenAI, env: dict[str, str], *extra: str) -> str:
    db = tmp_path / "p.db"
    make_project(db, n=4).close()
    finished = subprocess.run(
        [coder_executable(), *precode_args(db, fake, "--concurrency", "2", *extra)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert finished.returncode == 0, finished.stderr
    with sqlite3.connect(db) as conn:
        statuses = [row[0] for row in conn.execute("select status from proposals")]
        dump = "\n".join(conn.iterdump())
    assert statuses == ["ok"] * 4
    return finished.stdout + finished.stderr + dump


@pytest.mark.parametrize(
    "transport",
    [
        "aiohttp",
        pytest.param("httpx", marks=pytest.mark.slow),
        # the openai client under instructor instead of coder.llm.direct_chat
        pytest.param("aiohttp+openai-client", marks=pytest.mark.slow),
    ],
)
def test_calls_go_through_the_environment_proxy(
    tmp_path: Path, proxy: ForwardingProxy, transport: str
) -> None:
    with_password = proxy.url.replace("http://", f"http://coder:{PASSWORD}@")
    transport, _, client = transport.partition("+")
    env = clean_env(HTTP_PROXY=with_password, CODER_LLM_TRANSPORT=transport)
    if client:
        env["CODER_LLM_CLIENT"] = "openai"
    with FakeOpenAI() as fake:
        output = run_precode(tmp_path, fake, env)
        chat = [seen for seen in proxy.seen if seen[1].endswith("/chat/completions")]
        assert len(chat) == len(fake.chat_requests) == 4
        assert all(path == f"{fake.base_url}/chat/completions" for _, path, _ in chat)
        # The local server's context window is asked for through the proxy too.
        assert (("GET", f"{fake.base_url}/models")) in {(m, path) for m, path, _ in proxy.seen}
    expected = "Basic " + base64.b64encode(f"coder:{PASSWORD}".encode()).decode()
    assert {auth for _, _, auth in chat} == {expected}
    # The run names the proxy (without its password), so a wrong one is easy to spot.
    assert f"Model calls go through the proxy {proxy.url}" in output
    # The proxy's password reaches the proxy and nothing else.
    assert PASSWORD not in output
    assert not any(PASSWORD.encode() in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


@pytest.mark.parametrize("transport", ["aiohttp", pytest.param("httpx", marks=pytest.mark.slow)])
def test_no_proxy_sends_the_host_direct(
    tmp_path: Path, proxy: ForwardingProxy, transport: str
) -> None:
    env = clean_env(HTTP_PROXY=proxy.url, HTTPS_PROXY=proxy.url, NO_PROXY="example.org,127.0.0.1")
    env["CODER_LLM_TRANSPORT"] = transport
    with FakeOpenAI() as fake:
        output = run_precode(tmp_path, fake, env)
        assert len(fake.chat_requests) == 4
    assert proxy.seen == []
    assert "go through the proxy" not in output


def test_proxy_option_beats_the_environment(tmp_path: Path, proxy: ForwardingProxy) -> None:
    # HTTP_PROXY names a port nothing listens on: only --proxy can make the run succeed.
    env = clean_env(HTTP_PROXY="http://127.0.0.1:9", CODER_LLM_PROXY="http://127.0.0.1:9")
    with FakeOpenAI() as fake:
        run_precode(tmp_path, fake, env, "--proxy", proxy.url)
    assert sum(path.endswith("/chat/completions") for _, path, _ in proxy.seen) == 4


@pytest.mark.slow
def test_batch_api_goes_through_the_proxy(tmp_path: Path, proxy: ForwardingProxy) -> None:
    with FakeOpenAI() as fake:
        run_precode(
            tmp_path, fake, clean_env(), "--batch-api", "--poll-interval", "0", "--proxy", proxy.url
        )
        assert fake.chat_requests == []
    paths = {urlsplit(path).path for _, path, _ in proxy.seen}
    assert {"/v1/files", "/v1/batches"} <= paths


def test_coder_llm_proxy_variable(tmp_path: Path, proxy: ForwardingProxy) -> None:
    env = clean_env(CODER_LLM_PROXY=proxy.url.removeprefix("http://"))  # bare host:port
    with FakeOpenAI() as fake:
        run_precode(tmp_path, fake, env)
    assert sum(path.endswith("/chat/completions") for _, path, _ in proxy.seen) == 4


def test_a_bad_proxy_url_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    make_project(db, n=1).close()
    env = clean_env(HTTPS_PROXY=f"socks5://user:{PASSWORD}@proxy.example:1080")
    finished = subprocess.run(
        [coder_executable(), "precode", "--db", str(db), "--backend", "openai",
         "--base-url", "https://llm.example/v1"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert finished.returncode != 0
    assert "$HTTPS_PROXY" in finished.stderr and "socks5://proxy.example:1080" in finished.stderr
    assert "Traceback" not in finished.stderr and PASSWORD not in finished.stderr


URL = httpx2.URL


@pytest.mark.parametrize(
    ("environ", "url", "expected"),
    [
        ({"HTTPS_PROXY": "http://p:1"}, "https://api.openai.com/v1", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1"}, "http://127.0.0.1:8080/v1", None),
        (
            {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:1"},
            "https://a.b",
            "http://low:1",
        ),
        ({"ALL_PROXY": "http://all:1"}, "http://a.b", "http://all:1"),
        ({"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"}, "http://a.b", None),
        ({"HTTPS_PROXY": "p:1", "NO_PROXY": "*"}, "https://a.b", None),
        ({"HTTPS_PROXY": "p:1", "NO_PROXY": ".nhs.uk"}, "https://llm.nhs.uk", None),
        ({"HTTPS_PROXY": "p:1", "NO_PROXY": "nhs.uk"}, "https://llm.nhs.uk", None),
        ({"HTTPS_PROXY": "p:1", "NO_PROXY": "nhs.uk"}, "https://notnhs.uk", "http://p:1"),
        ({"HTTPS_PROXY": "p:1", "NO_PROXY": "10.0.0.0/8"}, "https://10.1.2.3/v1", None),
        ({"HTTPS_PROXY": "p:1", "NO_PROXY": "a.b:8443"}, "https://a.b/v1", "http://p:1"),
        ({"HTTPS_PROXY": "p:1", "NO_PROXY": "a.b:8443"}, "https://a.b:8443/v1", None),
        ({"HTTPS_PROXY": "p:1", "NO_PROXY": "::1"}, "http://[::1]:8000/v1", None),
        (
            {"HTTPS_PROXY": "p:1", "CODER_LLM_PROXY": "http://mine:2"},
            "https://a.b",
            "http://mine:2",
        ),
    ],
)
def test_routes_follow_the_standard_variables(
    environ: dict[str, str], url: str, expected: str | None
) -> None:
    assert ProxyRoutes.resolve(None, environ).proxy_for(URL(url)) == expected


def test_explicit_proxy_wins_and_no_proxy_still_applies() -> None:
    routes = ProxyRoutes.resolve(
        "http://mine:3", {"HTTPS_PROXY": "http://env:1", "NO_PROXY": "local.lan"}
    )
    assert routes.proxy_for(URL("https://api.openai.com/v1")) == "http://mine:3"
    assert routes.proxy_for(URL("http://llm.local.lan/v1")) is None


def test_an_unusable_environment_proxy_is_an_error_only_where_it_would_be_used() -> None:
    # ALL_PROXY=socks5://... is common on developers' machines; a local server that NO_PROXY
    # names (or a scheme with its own usable proxy) must still work.
    environ = {
        "ALL_PROXY": f"socks5://me:{PASSWORD}@127.0.0.1:1080",
        "HTTPS_PROXY": "http://p:1",
        "NO_PROXY": "localhost,127.0.0.1",
    }
    routes = ProxyRoutes.resolve(None, environ)
    assert routes.proxy_for(URL("http://127.0.0.1:8080/v1")) is None
    assert routes.proxy_for(URL("https://api.openai.com/v1")) == "http://p:1"
    with pytest.raises(BackendError, match=r"\$ALL_PROXY.*SOCKS"):
        routes.proxy_for(URL("http://llm.example/v1"))
    assert routes.secrets() == (PASSWORD,)


def test_local_server_runs_with_a_socks_all_proxy_it_bypasses(tmp_path: Path) -> None:
    env = clean_env(ALL_PROXY="socks5://127.0.0.1:1080", NO_PROXY="127.0.0.1")
    with FakeOpenAI() as fake:
        output = run_precode(tmp_path, fake, env)
        assert len(fake.chat_requests) == 4
    assert "go through the proxy" not in output and "SOCKS" not in output


def test_credentials_are_secrets_and_never_described() -> None:
    routes = ProxyRoutes.resolve(f"http://me:{PASSWORD}@proxy.nhs.uk:8080")
    assert routes.secrets() == (PASSWORD,)
    assert routes.describe() == {"all": "http://proxy.nhs.uk:8080"}
    assert without_credentials("http://proxy:1") == "http://proxy:1"
    with pytest.raises(BackendError, match="--proxy"):
        ProxyRoutes.resolve("ftp://proxy:21")


def test_an_unreachable_proxy_fails_the_calls_without_showing_its_password(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = tmp_path / "p.db"
    make_project(db, n=2).close()
    with FakeOpenAI() as fake:
        finished = subprocess.run(
            [coder_executable(), *precode_args(db, fake, "--max-attempts", "1")],
            env=clean_env(CODER_LLM_PROXY=f"http://me:{PASSWORD}@127.0.0.1:{port}"),
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
        assert fake.chat_requests == []
    with sqlite3.connect(db) as conn:
        errors = [row[0] for row in conn.execute("select error from proposals")]
        dump = "\n".join(conn.iterdump())
    assert len(errors) == 2 and all("cannot reach the proxy" in error for error in errors), errors
    assert f"127.0.0.1:{port}" in errors[0]
    assert PASSWORD not in finished.stdout + finished.stderr + dump


def test_settings_store_the_proxy_without_its_password() -> None:
    settings = LLMSettings(proxy=f"http://me:{PASSWORD}@proxy.nhs.uk:8080")
    assert settings.public()["proxy"] == "http://proxy.nhs.uk:8080"
    assert "proxy" not in settings.params()  # the route does not change an answer
