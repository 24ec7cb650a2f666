"""The fetcher against a real HTTP server on 127.0.0.1 (allow-listed by host and port).

Every address these tests can reach is a loopback one; refusals of other addresses run in
a loopback-only network namespace (test_fetch_netns.py).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from champipy.errors import (
    AddressNotAllowed,
    BadUrl,
    NotAnImage,
    RemoteFailed,
    RemoteNotFound,
    RemoteTimeout,
    TooLarge,
)
from champipy.fetch import SafeFetcher
from champipy.images import decode_image

from .conftest import MAX_BYTES, fetch_settings
from .server import LocalServer


@pytest.fixture
def fetcher(server: LocalServer) -> Iterator[SafeFetcher]:
    with SafeFetcher(fetch_settings(allow=f"127.0.0.1:{server.port}")) as running:
        yield running


def test_fetches_a_jpeg(fetcher: SafeFetcher, server: LocalServer, jpeg: bytes) -> None:
    fetched = fetcher.fetch(server.url("/img.jpg"))
    assert fetched.data == jpeg
    assert fetched.final_url == server.url("/img.jpg")
    assert fetched.content_type == "image/jpeg"
    assert decode_image(fetched.data).width == 48


def test_sends_plain_image_request_headers(fetcher: SafeFetcher, server: LocalServer) -> None:
    fetcher.fetch(server.url("/img.jpg"))
    headers = {k.lower(): v for k, v in server.requests[-1].headers.items()}
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert headers["accept-encoding"] == "identity"
    assert headers["accept"] == "image/*"
    assert "cookie" not in headers and "authorization" not in headers


def test_content_type_is_not_trusted(fetcher: SafeFetcher, server: LocalServer, jpeg: bytes) -> None:
    labelled_text = fetcher.fetch(server.url("/jpeg-as-text"))
    assert labelled_text.content_type == "text/plain"
    assert decode_image(labelled_text.data).format == "JPEG"

    labelled_jpeg = fetcher.fetch(server.url("/fake.jpg"))
    assert labelled_jpeg.content_type == "image/jpeg"
    with pytest.raises(NotAnImage):
        decode_image(labelled_jpeg.data)


def test_non_image_bytes_are_returned_for_the_caller_to_reject(fetcher: SafeFetcher, server: LocalServer) -> None:
    fetched = fetcher.fetch(server.url("/text"))
    assert fetched.data.startswith(b"<html>")
    with pytest.raises(NotAnImage):
        decode_image(fetched.data)


@pytest.mark.parametrize("status", [404, 410])
def test_missing_file_is_remote_not_found(fetcher: SafeFetcher, server: LocalServer, status: int) -> None:
    with pytest.raises(RemoteNotFound) as caught:
        fetcher.fetch(server.url(f"/status/{status}"))
    assert caught.value.status == 404


@pytest.mark.parametrize("status", [400, 401, 403, 429])
def test_other_client_errors_are_remote_failed_with_the_status(
    fetcher: SafeFetcher, server: LocalServer, status: int
) -> None:
    with pytest.raises(RemoteFailed, match=str(status)) as caught:
        fetcher.fetch(server.url(f"/status/{status}"))
    assert caught.value.status == 502


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_remote_failed(fetcher: SafeFetcher, server: LocalServer, status: int) -> None:
    with pytest.raises(RemoteFailed, match=str(status)):
        fetcher.fetch(server.url(f"/status/{status}"))


@pytest.mark.parametrize("path", ["/slow-headers", "/stall-body"])
def test_read_timeout_is_remote_timeout(fetcher: SafeFetcher, server: LocalServer, path: str) -> None:
    started = time.monotonic()
    with pytest.raises(RemoteTimeout) as caught:
        fetcher.fetch(server.url(path))
    assert caught.value.status == 504
    assert time.monotonic() - started < 2.0


def test_a_dripping_server_hits_the_total_deadline(server: LocalServer) -> None:
    settings = fetch_settings(allow=f"127.0.0.1:{server.port}")
    with SafeFetcher(settings, total_timeout=0.4) as fetcher:
        started = time.monotonic()
        with pytest.raises(RemoteTimeout, match="longer than"):
            fetcher.fetch(server.url("/drip"))
    assert time.monotonic() - started < 1.5


def test_connect_timeout_is_remote_timeout() -> None:
    # A listener whose accept queue is full drops new SYNs, so connect() waits.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = [socket.socket() for _ in range(3)]
    try:
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        settings = fetch_settings(allow=f"127.0.0.1:{port}", fetch_connect_timeout=0.3)
        with SafeFetcher(settings) as fetcher, pytest.raises(RemoteTimeout):
            fetcher.fetch(f"http://127.0.0.1:{port}/img.jpg")
    finally:
        for sock in [*fillers, listener]:
            sock.close()


def test_connection_refused_is_remote_failed() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with SafeFetcher(fetch_settings(allow=f"127.0.0.1:{port}")) as fetcher:
        with pytest.raises(RemoteFailed, match="refused") as caught:
            fetcher.fetch(f"http://127.0.0.1:{port}/img.jpg")
    assert caught.value.status == 502


def test_body_exactly_at_the_cap_is_accepted(fetcher: SafeFetcher, server: LocalServer) -> None:
    assert len(fetcher.fetch(server.url(f"/chunked/{MAX_BYTES}")).data) == MAX_BYTES


def test_chunked_body_over_the_cap_is_too_large(fetcher: SafeFetcher, server: LocalServer) -> None:
    with pytest.raises(TooLarge) as caught:
        fetcher.fetch(server.url(f"/chunked/{MAX_BYTES + 1}"))
    assert caught.value.status == 413


def test_endless_chunked_body_is_cut_at_the_cap(fetcher: SafeFetcher, server: LocalServer) -> None:
    with pytest.raises(TooLarge):
        fetcher.fetch(server.url(f"/chunked/{1024 * MAX_BYTES}"))


def test_content_length_over_the_cap_is_refused_before_reading(fetcher: SafeFetcher, server: LocalServer) -> None:
    # The server never sends the body: reading it would end in a timeout, not TooLarge.
    started = time.monotonic()
    with pytest.raises(TooLarge):
        fetcher.fetch(server.url("/huge-length"))
    assert time.monotonic() - started < 0.4


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_follows_redirects_up_to_the_limit(fetcher: SafeFetcher, server: LocalServer, jpeg: bytes, code: int) -> None:
    fetched = fetcher.fetch(server.url(f"/chain/3?code={code}"))
    assert fetched.data == jpeg
    assert fetched.final_url == server.url("/chain/0")
    assert server.paths() == [f"/chain/3?code={code}", "/chain/2", "/chain/1", "/chain/0"]


def test_too_many_redirects_are_refused(fetcher: SafeFetcher, server: LocalServer) -> None:
    with pytest.raises(RemoteFailed, match="redirects") as caught:
        fetcher.fetch(server.url("/chain/4"))
    assert caught.value.status == 502
    assert len(server.requests) == 4


def test_no_redirect_followed_when_the_limit_is_zero(server: LocalServer) -> None:
    settings = fetch_settings(allow=f"127.0.0.1:{server.port}", fetch_max_redirects=0)
    with SafeFetcher(settings) as fetcher, pytest.raises(RemoteFailed, match="redirects"):
        fetcher.fetch(server.url("/chain/1"))
    assert server.paths() == ["/chain/1"]


def test_redirect_to_an_absolute_allowed_url(fetcher: SafeFetcher, server: LocalServer, jpeg: bytes) -> None:
    fetched = fetcher.fetch(server.url(f"/redirect?to={server.url('/img.jpg')}"))
    assert fetched.data == jpeg
    assert fetched.final_url == server.url("/img.jpg")


def test_redirect_without_location_is_remote_failed(fetcher: SafeFetcher, server: LocalServer) -> None:
    with pytest.raises(RemoteFailed, match="Location"):
        fetcher.fetch(server.url("/redirect"))


@pytest.mark.parametrize(
    "target",
    ["file:///etc/passwd", "ftp://127.0.0.1/a.jpg", "gopher://127.0.0.1:70/", "http://user:pw@127.0.0.1/"],
)
def test_redirect_to_a_refused_url_is_bad_url(fetcher: SafeFetcher, server: LocalServer, target: str) -> None:
    with pytest.raises(BadUrl, match="redirect"):
        fetcher.fetch(server.url(f"/redirect?to={target}"))
    assert len(server.requests) == 1


def test_redirect_to_loopback_on_another_port_is_refused(fetcher: SafeFetcher, server: LocalServer) -> None:
    # Only 127.0.0.1:<server port> is allow-listed; another port is plain loopback.
    with LocalServer(b"other") as other:
        with pytest.raises(AddressNotAllowed) as caught:
            fetcher.fetch(server.url(f"/redirect?to={other.url('/img.jpg')}"))
        assert other.requests == []
    assert caught.value.status == 403


def test_cookies_are_never_sent_back(fetcher: SafeFetcher, server: LocalServer) -> None:
    fetcher.fetch(server.url("/set-cookie"))
    fetcher.fetch(server.url("/img.jpg"))
    assert server.paths() == ["/set-cookie", "/img.jpg", "/img.jpg"]
    for seen in server.requests:
        assert "cookie" not in {name.lower() for name in seen.headers}


def test_proxy_variables_are_ignored(monkeypatch: pytest.MonkeyPatch, server: LocalServer, jpeg: bytes) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with SafeFetcher(fetch_settings(allow=f"127.0.0.1:{server.port}")) as fetcher:
        assert fetcher.fetch(server.url("/img.jpg")).data == jpeg


def test_host_name_is_resolved_by_the_fetcher_and_kept_in_the_host_header(server: LocalServer, jpeg: bytes) -> None:
    asked: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["127.0.0.1"]

    settings = fetch_settings(allow="images.test")
    with SafeFetcher(settings, resolver=resolver) as fetcher:
        fetched = fetcher.fetch(server.url("/img.jpg", host="images.test"))
    assert fetched.data == jpeg
    assert asked == [("images.test", server.port)]
    assert server.requests[0].headers["Host"] == f"images.test:{server.port}"


def test_host_name_resolving_to_loopback_is_refused_unless_allowed(server: LocalServer) -> None:
    with SafeFetcher(
        fetch_settings(allow=f"other.test,127.0.0.1:{server.port}"), resolver=lambda host, port: ["127.0.0.1"]
    ) as fetcher:
        with pytest.raises(AddressNotAllowed, match="images.test"):
            fetcher.fetch(server.url("/img.jpg", host="images.test"))
    assert server.requests == []


def test_unresolvable_host_is_remote_failed() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with SafeFetcher(fetch_settings(), resolver=resolver) as fetcher:
        with pytest.raises(RemoteFailed, match="could not be resolved"):
            fetcher.fetch("https://no-such-host.test/a.jpg")
