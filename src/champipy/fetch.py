"""Fetching an image URL sent by a user without letting it reach our own network (SSRF).

The address check happens where the socket is opened: a custom httpcore network backend
resolves the host name itself, refuses the connection unless every resolved address is
public (or the host is allow-listed), then connects to one of the addresses it checked.
There is no gap between check and connect, so DNS rebinding cannot slip through, and every
redirect hop opens its connections through the same backend. TLS SNI, certificate checks
and the Host header still use the host name from the URL, since httpcore takes them from
the request, not from the socket.
"""

from __future__ import annotations

import http.cookiejar
import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from .errors import AddressNotAllowed, BadUrl, Busy, RemoteFailed, RemoteNotFound, RemoteTimeout, TooLarge
from .settings import Settings

log = logging.getLogger(__name__)

MAX_URL_LENGTH = 2048
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Host names after IDNA encoding; anything else would only reach the resolver as junk.
_HOST_NAME = re.compile(r"[a-z0-9_.-]+")

# A resolver maps (host, port) to the IP addresses to try, in order, as strings.
Resolver = Callable[[str, int], Sequence[str]]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, where cloud metadata services live
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
    )
)

# Anything outside global unicast (loopback, unspecified, IPv4-compatible, ULA, link-local,
# site-local, multicast, discard...) is refused; the forms that embed an IPv4 address are
# judged by that address first.
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) included
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
    )
)
_NAT64_V6 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR_V6 = ipaddress.IPv6Network("2002::/16")


def is_public_address(address: str | IPAddress) -> bool:
    """True when a fetch may connect to ``address``: globally routable unicast only."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded)
        if ip not in _GLOBAL_UNICAST_V6 or any(ip in net for net in _BLOCKED_V6):
            return False
        return ip.is_global
    if any(ip in net for net in _BLOCKED_V4):
        return False
    return ip.is_global and not ip.is_multicast


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64_V6:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_allowed_host(host: str, port: int, allowed: frozenset[str]) -> bool:
    """``host`` (any port) or ``host:port`` in the allow-list; IPv6 hosts may be bracketed."""
    host = host.lower()
    names = {host, f"[{host}]"} if ":" in host else {host}
    return any(name in allowed or f"{name}:{port}" in allowed for name in names)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to addresses the policy accepts, checked at connect time."""

    def __init__(self, allowed_hosts: frozenset[str], resolver: Resolver = system_resolver):
        self._allowed_hosts = allowed_hosts
        self._resolver = resolver
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._resolve(host, port)
        if not is_allowed_host(host, port, self._allowed_hosts):
            refused = [a for a in addresses if not is_public_address(_without_scope(a))]
            if refused:
                log.warning("refused fetch of %s:%s resolving to %s", host, port, refused)
                raise AddressNotAllowed(
                    f"The host {host!r} is not a public internet address; images can only be fetched from public hosts."
                )
        return self._connect_first(addresses, port, timeout, local_address, socket_options)

    def _resolve(self, host: str, port: int) -> Sequence[str]:
        try:
            addresses = self._resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise RemoteFailed(f"The host {host!r} could not be resolved.") from exc
        if not addresses:
            raise RemoteFailed(f"The host {host!r} could not be resolved.")
        return addresses

    def _connect_first(
        self,
        addresses: Sequence[str],
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[Any] | None,
    ) -> httpcore.NetworkStream:
        # One connect timeout for all addresses together, so a name with many dead
        # addresses cannot multiply the wait.
        deadline = None if timeout is None else time.monotonic() + timeout
        error: Exception = httpcore.ConnectError("no address to connect to")
        for address in addresses:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise httpcore.ConnectTimeout("timed out")
            try:
                return self._sockets.connect_tcp(
                    address,
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise AddressNotAllowed("Unix sockets are never fetched.")

    def sleep(self, seconds: float) -> None:
        self._sockets.sleep(seconds)


def _without_scope(address: str) -> str:
    return address.split("%", 1)[0]


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, backend: GuardedBackend, ssl_context: ssl.SSLContext, max_connections: int):
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx has no public way to choose the network backend; its transport sends
        # everything through ``_pool``, so we hand it a pool built on our backend.
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError("this httpx version has no HTTPTransport._pool to replace")
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, network_backend=backend, max_connections=max_connections
        )


@dataclass(frozen=True)
class FetchedImage:
    data: bytes
    final_url: str
    content_type: str | None  # as the remote said; informational only, never trusted


class SafeFetcher:
    """Downloads the bytes behind a user-supplied http(s) URL. Synchronous and thread-safe.

    ``resolver`` and ``ssl_context`` exist for tests and private certificate authorities.
    ``total_timeout`` bounds a whole fetch (all redirects and the body), since the read
    timeout alone lets a server that drips a byte at a time hold a worker for ever.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
        total_timeout: float | None = None,
    ):
        self._max_bytes = settings.fetch_max_bytes
        self._max_redirects = settings.fetch_max_redirects
        self._total_timeout = total_timeout or (settings.fetch_connect_timeout + 2 * settings.fetch_read_timeout)
        backend = GuardedBackend(settings.allowed_fetch_hosts, resolver)
        context = ssl_context or httpx.create_ssl_context(trust_env=False)
        self._client = httpx.Client(
            # As many connections as the worker threads that fetch (httpcore's default is 10, so
            # ten dripping URLs made every other fetch wait): a full pool is reported as busy.
            transport=_GuardedTransport(backend, context, settings.fetch_max_connections),
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(
                connect=settings.fetch_connect_timeout,
                read=settings.fetch_read_timeout,
                write=settings.fetch_read_timeout,
                pool=settings.fetch_connect_timeout,
            ),
            # Cookies set by one user's URL must never be sent with another user's fetch.
            cookies=http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
            headers={
                "User-Agent": "champipy-fetcher/1",
                "Accept": "image/*",
                # Images are already compressed; refusing content-coding also rules out
                # gzip bombs that would inflate past the size cap in a single chunk.
                "Accept-Encoding": "identity",
            },
        )

    def fetch(self, url: str) -> FetchedImage:
        deadline = time.monotonic() + self._total_timeout
        target = check_url(url)
        for _ in range(self._max_redirects + 1):
            self._check_deadline(deadline)
            with _remote_errors(target), self._client.stream("GET", target) as response:
                if response.status_code in REDIRECT_STATUSES:
                    target = _redirect_target(response)
                    continue
                _raise_for_status(response)
                data = self._read_body(response, deadline)
                content_type = response.headers.get("content-type")
                return FetchedImage(data=data, final_url=str(response.url), content_type=content_type)
        raise RemoteFailed(f"Too many redirects: more than {self._max_redirects} were needed.")

    def _read_body(self, response: httpx.Response, deadline: float) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise TooLarge(self._too_large_message())
        body = bytearray()
        for chunk in response.iter_raw():
            body += chunk
            if len(body) > self._max_bytes:
                raise TooLarge(self._too_large_message())
            self._check_deadline(deadline)
        return bytes(body)

    def _check_deadline(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise RemoteTimeout(f"The download took longer than {self._total_timeout:g} seconds.")

    def _too_large_message(self) -> str:
        return f"The file is larger than the {self._max_bytes:,} bytes accepted."

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SafeFetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_url(url: str, *, redirected: bool = False) -> httpx.URL:
    """Parse a URL we are asked to fetch, refusing anything but plain http(s) to a host."""
    what = "The redirect target" if redirected else "The URL"
    if not isinstance(url, str) or not url.strip():
        raise BadUrl(f"{what} is empty.")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise BadUrl(f"{what} is longer than {MAX_URL_LENGTH} characters.")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise BadUrl(f"{what} is not a valid URL: {exc}.") from exc
    if parsed.scheme not in ("http", "https"):
        raise BadUrl(f"{what} must start with http:// or https://.")
    if not parsed.host:
        raise BadUrl(f"{what} has no host name.")
    host = parsed.raw_host.decode("ascii")
    if ":" not in host and not _HOST_NAME.fullmatch(host):
        raise BadUrl(f"{what} has an invalid host name.")
    if parsed.userinfo:
        raise BadUrl(f"{what} must not contain a user name or password.")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise BadUrl(f"{what} has an invalid port number.")
    return parsed.copy_with(fragment=None)


def _redirect_target(response: httpx.Response) -> httpx.URL:
    location = response.headers.get("location")
    if not location:
        raise RemoteFailed(f"The remote server answered {response.status_code} without a Location.")
    try:
        joined = response.url.join(location)
    except httpx.InvalidURL as exc:
        raise BadUrl("The remote server redirected to an invalid URL.") from exc
    return check_url(str(joined), redirected=True)


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = f"{status} {response.reason_phrase}".strip()
    if status in (404, 410):
        raise RemoteNotFound(f"The remote server has no file at this URL ({reason}).")
    raise RemoteFailed(f"The remote server answered {reason}.")


@contextmanager
def _remote_errors(url: httpx.URL) -> Iterator[None]:
    host = url.host
    try:
        yield
    except httpx.PoolTimeout as exc:  # our side is full, not the remote slow
        raise Busy("Every download connection is in use; try again in a moment.", retry_after=2) from exc
    except httpx.TimeoutException as exc:
        raise RemoteTimeout(f"The host {host!r} did not answer in time.") from exc
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise BadUrl(f"The URL cannot be fetched: {exc}.") from exc
    except httpx.HTTPError as exc:
        raise RemoteFailed(f"The download from {host!r} failed: {_describe(exc)}.") from exc


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return text if text else type(exc).__name__
