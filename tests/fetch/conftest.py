from __future__ import annotations

import io
import ipaddress
import socket
from collections.abc import Iterator

import pytest
from PIL import Image

from champipy.settings import Settings

from .netns import told_we_are_inside
from .server import LocalServer

MAX_BYTES = 64 * 1024

# The namespace tests run only inside the loopback-only namespace, where test_fetch_netns.py
# starts them; outside it they are not even collected.
collect_ignore = [] if told_we_are_inside() else ["test_fetch_netns_inner.py"]


@pytest.fixture(scope="session")
def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (48, 32), (120, 80, 40)).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
def server(jpeg: bytes) -> Iterator[LocalServer]:
    with LocalServer(jpeg) as running:
        yield running


def fetch_settings(allow: str = "", **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        fetch_allow_hosts=allow,
        fetch_max_bytes=MAX_BYTES,
        fetch_connect_timeout=1.0,
        fetch_read_timeout=0.5,
        fetch_max_redirects=3,
    )
    values.update(overrides)
    return Settings(**values)


class OffLoopbackAttempt(AssertionError):
    """Raised instead of letting a test outside the namespace reach past loopback."""


def _is_loopback_literal(host: object) -> bool:
    text = host.decode() if isinstance(host, bytes) else str(host)
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_traffic_past_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Outside the namespace, refuse name lookups and connections that are not loopback.

    A safety net for the harness, not part of what is tested: if the fetcher's own guard
    breaks, tests here fail loudly instead of sending a packet off this machine.
    """
    if told_we_are_inside():
        yield
        return
    violations: list[object] = []
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def check(target: object) -> None:
        if isinstance(target, tuple) and not _is_loopback_literal(target[0]):
            violations.append(target)
            raise OffLoopbackAttempt(f"test tried to reach {target!r} outside the namespace")

    def getaddrinfo(host: object, port: object, *args: object, **kwargs: object) -> object:
        check((host, port))
        return real_getaddrinfo(host, port, *args, **kwargs)

    def connect(self: socket.socket, address: object) -> None:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield
    assert violations == [], f"attempts to reach past loopback: {violations}"
