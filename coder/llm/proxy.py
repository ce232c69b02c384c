"""Which HTTP proxy, if any, a model call goes through.

httpx mounts the proxies named by ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` only
when it builds its own transport; ours (``coder.llm.transport``, over aiohttp or httpx2's
own) are given explicitly, so the choice is made here and handed to them. The order:
``--proxy`` (or ``proxy`` in the config file), else ``$CODER_LLM_PROXY``, else the
standard variables for the request's scheme (lower case first, as curl and urllib read
them), else ``ALL_PROXY``. ``NO_PROXY`` (host names, domain suffixes, ``host:port``, IP
addresses or CIDR networks, ``*`` for all) sends the hosts it names direct, whichever
proxy was chosen. A proxy URL may carry ``user:password@``: the password joins the
secrets that are masked in everything stored or printed.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx2

from coder.errors import BackendError

#: environment variable: the proxy for model calls (below --proxy, above HTTPS_PROXY)
ENV_VAR = "CODER_LLM_PROXY"
#: proxy schemes both transports speak (aiohttp has no SOCKS of its own)
SCHEMES = ("http", "https")


@dataclass
class ProxyRoutes:
    """The proxies for model calls, resolved once per run (environment read once)."""

    #: scheme ("http", "https", "all") -> proxy URL
    proxies: Mapping[str, str]
    #: NO_PROXY entries, lower case
    no_proxy: tuple[str, ...] = ()
    #: scheme -> why the environment's proxy for it cannot be used (e.g. SOCKS): an error
    #: only for a call that would go through it (ALL_PROXY=socks5://... on a developer's
    #: machine must not stop a run against a server that NO_PROXY or the scheme sends direct)
    unusable: Mapping[str, str] = field(default_factory=dict)
    #: (scheme, host, port) -> proxy chosen: asked once per host, not once per call
    _chosen: dict[tuple[str, str, int | None], str | None] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def resolve(
        cls, explicit: str | None = None, environ: Mapping[str, str] | None = None
    ) -> ProxyRoutes:
        """The routes from ``explicit`` (--proxy / the config file), else the environment."""
        environ = os.environ if environ is None else environ
        no_proxy = _entries(_variable(environ, "no_proxy") or "")
        if explicit is None and environ.get(ENV_VAR):
            explicit, origin = environ[ENV_VAR], f"${ENV_VAR}"
        else:
            origin = "--proxy or the config file's proxy"
        if explicit:
            url = _checked(explicit.strip(), origin)
            return cls({"all": url}, no_proxy)
        proxies: dict[str, str] = {}
        unusable: dict[str, str] = {}
        for scheme in ("http", "https", "all"):
            value = _variable(environ, f"{scheme}_proxy")
            # Under CGI, HTTP_PROXY can be set by a client's "Proxy:" header (httpoxy).
            if scheme == "http" and "REQUEST_METHOD" in environ:
                value = environ.get("http_proxy")
            if value:
                try:
                    proxies[scheme] = _checked(value.strip(), f"${scheme.upper()}_PROXY")
                except BackendError as error:
                    proxies[scheme], unusable[scheme] = value.strip(), str(error)
        return cls(proxies, no_proxy, unusable)

    def proxy_for(self, url: httpx2.URL) -> str | None:
        """The proxy URL for a request to ``url`` (None: go direct)."""
        key = (url.scheme, url.host, url.port)
        if key not in self._chosen:
            scheme = url.scheme if url.scheme in self.proxies else "all"
            proxy = self.proxies.get(scheme)
            if proxy and _bypassed(url.host, url.port or _default_port(url.scheme), self.no_proxy):
                proxy = None
            if proxy and scheme in self.unusable:
                raise BackendError(self.unusable[scheme])
            self._chosen[key] = proxy
        return self._chosen[key]

    def secrets(self) -> tuple[str, ...]:
        """Passwords in the proxy URLs: masked like the API key."""
        passwords = (_password(proxy) for proxy in self.proxies.values())
        return tuple(password for password in passwords if password)

    def for_endpoint(self, base_url: str) -> str | None:
        """The proxy calls to ``base_url`` go through, without credentials (None: direct)."""
        proxy = self.proxy_for(httpx2.URL(base_url))
        return without_credentials(proxy) if proxy else None

    def describe(self) -> dict[str, str]:
        """The proxies without credentials (safe to print and store)."""
        return {scheme: without_credentials(url) for scheme, url in self.proxies.items()}


class ProxyRouter(httpx2.AsyncBaseTransport):
    """httpx2's own transport, one per proxy (and one direct), chosen per request."""

    def __init__(self, limits: httpx2.Limits, routes: ProxyRoutes) -> None:
        self.limits = limits
        self.routes = routes
        self.transports: dict[str | None, httpx2.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        proxy = self.routes.proxy_for(request.url)
        transport = self.transports.get(proxy)
        if transport is None:
            transport = httpx2.AsyncHTTPTransport(limits=self.limits, proxy=proxy)
            self.transports[proxy] = transport
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        for transport in self.transports.values():
            await transport.aclose()
        self.transports.clear()


def _password(url: str) -> str | None:
    """The password in a proxy URL (None when there is none or the URL cannot be read)."""
    try:
        return urlsplit(url if "://" in url else f"http://{url}").password
    except ValueError:
        return None


def without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` removed."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _variable(environ: Mapping[str, str], name: str) -> str | None:
    """``name`` in lower case, else upper case (curl's and urllib's order)."""
    return environ.get(name) or environ.get(name.upper())


def _checked(url: str, origin: str) -> str:
    """``url`` as a proxy URL (a bare ``host:port`` means http), or a clear error."""
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise BackendError(
            f"proxy {without_credentials(url)!r} (from {origin}): expected "
            "http://host:port or https://host:port (SOCKS proxies are not supported)"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as error:
        raise BackendError(f"proxy from {origin}: {error}") from None
    return url


def _entries(no_proxy: str) -> tuple[str, ...]:
    return tuple(entry.strip().lower() for entry in no_proxy.split(",") if entry.strip())


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _bypassed(host: str, port: int, no_proxy: tuple[str, ...]) -> bool:
    """True when NO_PROXY names ``host`` (or ``host:port``, a parent domain, a network)."""
    host = host.lower().strip("[]")
    for entry in no_proxy:
        if entry == "*":
            return True
        name, wanted_port = entry, None
        if entry.count(":") == 1 and not entry.startswith("["):
            name, _, port_text = entry.partition(":")
            wanted_port = int(port_text) if port_text.isdigit() else None
        name = name.strip("[]")
        if wanted_port is not None and wanted_port != port:
            continue
        if _in_network(host, name):
            return True
        suffix = name.lstrip(".").removeprefix("*.")
        if host == suffix or host.endswith(f".{suffix}"):
            return True
    return False


def _in_network(host: str, entry: str) -> bool:
    """True when ``host`` is an IP address inside ``entry`` (an address or a CIDR network)."""
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


class SyncProxyRouter(httpx2.BaseTransport):
    """:class:`ProxyRouter` for the synchronous client (the Batch API's uploads and polls)."""

    def __init__(self, routes: ProxyRoutes) -> None:
        self.routes = routes
        self.transports: dict[str | None, httpx2.HTTPTransport] = {}

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        proxy = self.routes.proxy_for(request.url)
        transport = self.transports.get(proxy)
        if transport is None:
            transport = self.transports[proxy] = httpx2.HTTPTransport(proxy=proxy)
        return transport.handle_request(request)

    def close(self) -> None:
        for transport in self.transports.values():
            transport.close()
        self.transports.clear()
