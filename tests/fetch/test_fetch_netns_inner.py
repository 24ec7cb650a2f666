"""SSRF refusals, run only inside the loopback-only namespace that test_fetch_netns.py makes.

These tests name private and other non-public addresses. Outside that namespace they skip;
inside it, a guard that failed would meet "network unreachable", never a real host. Each
test also records every connect() and create_connection() call to show that the refusal
came before any connection was attempted.
"""

from __future__ import annotations

import errno
import socket

import pytest

from champipy.errors import AddressNotAllowed, BadUrl, RemoteFailed
from champipy.fetch import SafeFetcher

from .conftest import fetch_settings
from .netns import assert_loopback_only, told_we_are_inside
from .server import LocalServer

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(
        not told_we_are_inside(),
        reason="runs only inside the loopback-only network namespace made by test_fetch_netns.py",
    ),
]

Attempts = list[object]


@pytest.fixture(autouse=True, scope="module")
def _isolated() -> None:
    assert_loopback_only()


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> Attempts:
    """Every address a socket in this process tries to connect to, in order."""
    seen: Attempts = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection

    def connect(self: socket.socket, address: object) -> None:
        seen.append(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        seen.append(address)
        return real_connect_ex(self, address)

    def create_connection(address: object, *args: object, **kwargs: object) -> socket.socket:
        seen.append(address)
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    return seen


def _hosts(attempts: Attempts) -> set[tuple[str, int]]:
    return {(address[0], address[1]) for address in attempts}  # type: ignore[index]


@pytest.mark.parametrize(
    ("family", "address"), [(socket.AF_INET, ("10.0.0.1", 80)), (socket.AF_INET6, ("2001:db8::1", 80))]
)
def test_namespace_has_no_route_out(family: int, address: tuple[str, int]) -> None:
    with socket.socket(family, socket.SOCK_STREAM) as raw:
        raw.settimeout(2)
        with pytest.raises(OSError) as caught:
            raw.connect(address)
    assert caught.value.errno == errno.ENETUNREACH


PRIVATE_TARGETS = [
    "http://10.0.0.1/a.jpg",
    "http://10.255.255.254:8080/a.jpg",
    "http://172.16.0.1/a.jpg",
    "http://172.31.255.254/a.jpg",
    "http://192.168.1.1/a.jpg",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/a.jpg",
    "http://0.0.0.0/a.jpg",
    "http://224.0.0.1/a.jpg",
    "http://255.255.255.255/a.jpg",
    "http://[fd00::1]/a.jpg",
    "http://[fe80::1]/a.jpg",
    "http://[ff02::1]/a.jpg",
    "http://[::ffff:10.0.0.1]/a.jpg",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "http://[2002:a9fe:a9fe::1]/latest/meta-data/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/a.jpg",
]

# {port} is the live server's, so a broken guard would get an answer, not a refusal.
LOOPBACK_TARGETS = [
    "http://127.0.0.1:{port}/img.jpg",
    "http://127.9.9.9:{port}/img.jpg",
    "http://[::1]:{port}/img.jpg",
    "http://[::]:{port}/img.jpg",
    "http://[::ffff:127.0.0.1]:{port}/img.jpg",
    "http://[::127.0.0.1]:{port}/img.jpg",
    "http://[64:ff9b::7f00:1]:{port}/img.jpg",
    "http://2130706433:{port}/img.jpg",
    "http://0x7f000001:{port}/img.jpg",
    "http://0x7f.1:{port}/img.jpg",
    "http://017700000001:{port}/img.jpg",
    "http://127.1:{port}/img.jpg",
    "http://localhost:{port}/img.jpg",
    "http://LocalHost:{port}/img.jpg",
]


@pytest.mark.parametrize("url", PRIVATE_TARGETS + LOOPBACK_TARGETS)
def test_non_public_address_is_refused_before_connecting(url: str, server: LocalServer, attempts: Attempts) -> None:
    with SafeFetcher(fetch_settings()) as fetcher:
        with pytest.raises(AddressNotAllowed) as caught:
            fetcher.fetch(url.format(port=server.port))
    assert caught.value.status == 403
    assert attempts == []
    assert server.requests == []


def test_octal_dotted_address_is_refused_before_connecting(server: LocalServer, attempts: Attempts) -> None:
    # httpx itself rejects this form; what matters is that nothing is contacted.
    with SafeFetcher(fetch_settings()) as fetcher:
        with pytest.raises((BadUrl, AddressNotAllowed)):
            fetcher.fetch(f"http://0177.0.0.1:{server.port}/img.jpg")
    assert attempts == []


@pytest.mark.parametrize("allow", ["127.0.0.1:{other}", "localhost:{port}", "127.0.0.2", "[::1]:{port}"])
def test_allow_list_entries_for_something_else_do_not_open_the_server(
    allow: str, server: LocalServer, attempts: Attempts
) -> None:
    settings = fetch_settings(allow=allow.format(port=server.port, other=server.port + 1))
    with SafeFetcher(settings) as fetcher, pytest.raises(AddressNotAllowed):
        fetcher.fetch(server.url("/img.jpg"))
    assert attempts == []


@pytest.mark.parametrize(
    "target",
    PRIVATE_TARGETS
    + [
        "http://localhost:{port}/img.jpg",
        "http://2130706433:{port}/img.jpg",
        "http://[::ffff:127.0.0.1]:{port}/img.jpg",
        "http://127.0.0.1:{other}/img.jpg",
    ],
)
@pytest.mark.parametrize("code", [302, 307])
def test_redirect_from_allowed_server_to_non_public_address_is_refused(
    target: str, code: int, server: LocalServer, attempts: Attempts
) -> None:
    settings = fetch_settings(allow=f"127.0.0.1:{server.port}")
    location = target.format(port=server.port, other=server.port + 1)
    with SafeFetcher(settings) as fetcher, pytest.raises(AddressNotAllowed) as caught:
        fetcher.fetch(server.url(f"/redirect?code={code}&to={location}"))
    assert caught.value.status == 403
    assert _hosts(attempts) == {("127.0.0.1", server.port)}
    assert server.paths() == [f"/redirect?code={code}&to={location}"]


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.1"],
        ["169.254.169.254"],
        ["::ffff:169.254.169.254"],
        ["fd00::1"],
        ["93.184.216.34", "10.0.0.1"],
        ["2606:2800:220:1:248:1893:25c8:1946", "::1"],
    ],
)
def test_host_name_with_any_non_public_address_is_refused(addresses: list[str], attempts: Attempts) -> None:
    with SafeFetcher(fetch_settings(), resolver=lambda host, port: addresses) as fetcher:
        with pytest.raises(AddressNotAllowed, match="internal.test"):
            fetcher.fetch("http://internal.test/a.jpg")
    assert attempts == []


def test_connection_goes_to_the_address_that_was_checked(server: LocalServer, attempts: Attempts) -> None:
    # DNS rebinding: a second lookup would answer loopback. There must be no second lookup;
    # the socket goes to the public address that passed the check (unreachable here).
    answers = iter([["93.184.216.34"], ["127.0.0.1"], ["127.0.0.1"]])
    asked: list[str] = []

    def rebinding_resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    with SafeFetcher(fetch_settings(), resolver=rebinding_resolver) as fetcher:
        with pytest.raises(RemoteFailed, match="unreachable"):
            fetcher.fetch(f"http://rebind.test:{server.port}/img.jpg")
    assert asked == ["rebind.test"]
    assert _hosts(attempts) == {("93.184.216.34", server.port)}
    assert server.requests == []
