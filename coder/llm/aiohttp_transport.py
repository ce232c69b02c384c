"""HTTP/1.1 connections for the openai client through aiohttp instead of httpcore.

The openai client speaks httpx2; under it, httpx2's own transport (httpcore, h11, anyio)
parses each answer in Python and walks its whole connection pool to place each request:
a third of the client's CPU per call at concurrency 32, where the one event-loop thread
sets the pace. aiohttp parses HTTP in C and keeps its pool in a dict, which took the
client from about 9,000 Python function calls per answer to 6,500. The openai client
documents the same swap (``openai[aiohttp]``, ``DefaultAioHttpClient``); this module is
our own small version, so that :class:`coder.llm.transport.LoggingTransport` can wrap it
(every attempt logged, one deadline, a size cap) like any httpx2 transport.

What stays with httpx2: building the request (headers, JSON body) and decoding the body
(gzip, deflate, and br/zstd when installed): aiohttp hands over the raw bytes
(``auto_decompress=False``), so the size cap counts decoded bytes exactly as before.
Certificates are checked with httpx2's SSL context. Connection errors become httpx2's
(``ConnectError``, ``ReadError``, ``TimeoutException``), which the caller
(:mod:`coder.llm.direct_chat` or the openai client) turns into openai's usual
``APIConnectionError`` / ``APITimeoutError`` for our retry policy.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import httpx2
import yarl

from coder.llm.proxy import ProxyRouter, ProxyRoutes

#: environment variable: ``httpx`` keeps httpx2's own transport (e.g. to rule this one out)
ENV_VAR = "CODER_LLM_TRANSPORT"
#: read size while streaming an answer
CHUNK_BYTES = 64 * 1024


@contextmanager
def _httpx_errors() -> Iterator[None]:
    """aiohttp's connection errors as httpx2's (the openai client knows those)."""
    try:
        yield
    except aiohttp.ClientProxyConnectionError as error:
        # Said apart from the endpoint's: a proxy setting is the first thing to check.
        raise httpx2.ProxyError(f"cannot reach the proxy: {error}") from error
    except aiohttp.ClientConnectorError as error:
        raise httpx2.ConnectError(str(error)) from error
    except TimeoutError as error:  # aiohttp.ServerTimeoutError is one too
        raise httpx2.ReadTimeout(str(error) or "timed out") from error
    except aiohttp.ClientError as error:
        raise httpx2.ReadError(f"{type(error).__name__}: {error}") from error


class _Body(httpx2.AsyncByteStream):
    """An aiohttp answer's raw (still encoded) body, streamed to httpx2."""

    def __init__(self, answer: aiohttp.ClientResponse) -> None:
        self.answer = answer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for chunk in self.answer.content.iter_chunked(CHUNK_BYTES):
                yield chunk

    async def aclose(self) -> None:
        # A fully read answer's connection goes back to the pool; a half-read one (size
        # cap, deadline) is closed, or its leftover bytes would start the next answer.
        if self.answer.content.at_eof():
            self.answer.release()
        else:
            self.answer.close()


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport over one aiohttp session (created on first use, in the loop),
    through the proxy ``routes`` choose for each host."""

    def __init__(self, limits: httpx2.Limits, routes: ProxyRoutes | None = None) -> None:
        self.limits = limits
        self.routes = routes or ProxyRoutes({})
        self.session: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            connector = aiohttp.TCPConnector(
                limit=self.limits.max_connections or 0,
                keepalive_timeout=self.limits.keepalive_expiry,
                ssl=httpx2.create_ssl_context(),
            )
            # No cookies kept, no headers of aiohttp's own beyond what HTTP needs.
            self.session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
        return self.session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        timeout = request.extensions.get("timeout", {})
        body = await request.aread()
        with _httpx_errors():
            answer = await self._session().request(
                request.method,
                # Already encoded by httpx2: sent as it is, not quoted again.
                yarl.URL(str(request.url), encoded=True),
                headers=list(request.headers.multi_items()),
                data=body or None,
                allow_redirects=False,
                # aiohttp's trust_env would look the proxy up in a thread on every call.
                proxy=self.routes.proxy_for(request.url),
                auto_decompress=False,
                compress=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        return httpx2.Response(
            answer.status,
            headers=answer.raw_headers,
            stream=_Body(answer),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


def inner_transport(
    limits: httpx2.Limits, routes: ProxyRoutes | None = None
) -> httpx2.AsyncBaseTransport:
    """The transport the logging wrapper sends through, via the proxies ``routes`` choose
    (default: the environment's): aiohttp's, unless ``CODER_LLM_TRANSPORT=httpx`` asks
    for httpx2's own."""
    routes = routes or ProxyRoutes.resolve()
    if os.environ.get(ENV_VAR, "").strip().lower() == "httpx":
        return (
            ProxyRouter(limits, routes)
            if routes.proxies
            else httpx2.AsyncHTTPTransport(limits=limits)
        )
    return AiohttpTransport(limits, routes)
