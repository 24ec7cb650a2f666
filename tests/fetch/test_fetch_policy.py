"""The fetcher's pure rules: which URLs parse and which addresses count as public (no I/O)."""

from __future__ import annotations

import pytest

from champipy.errors import BadUrl
from champipy.fetch import MAX_URL_LENGTH, check_url, is_allowed_host, is_public_address


@pytest.mark.parametrize(
    "address",
    [
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "10.255.255.255",
        "100.64.0.1",
        "100.127.255.254",
        "127.0.0.1",
        "127.1.2.3",
        "169.254.169.254",
        "169.254.0.1",
        "172.16.0.1",
        "172.31.255.254",
        "192.0.0.9",
        "192.0.2.1",
        "192.88.99.1",
        "192.168.1.1",
        "198.18.0.1",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "::10.0.0.1",  # IPv4-compatible
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a00:1",  # NAT64
        "2002:7f00:1::1",
        "2002:a9fe:a9fe::1",
        "2002:a00:1::",  # 6to4
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001::1",  # Teredo
        "2001:db8::1",
        "3fff::1",
        "100::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "fe80::1%1",
        "fec0::1",
        "ff02::1",
        "ff0e::1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "151.101.1.69",
        "2606:2800:220:1:248:1893:25c8:1946",
        "2001:4860:4860::8888",
        "::ffff:93.184.216.34",
        "64:ff9b::808:808",
        "2002:5db8:d822::1",
    ],
)
def test_public_addresses_are_accepted(address: str) -> None:
    assert is_public_address(address)


@pytest.mark.parametrize(
    ("host", "port", "allowed", "expected"),
    [
        ("mushroomobserver.org", 443, {"mushroomobserver.org"}, True),
        ("mushroomobserver.org", 8443, {"mushroomobserver.org"}, True),
        ("MushroomObserver.org", 443, {"mushroomobserver.org"}, True),
        ("127.0.0.1", 8080, {"127.0.0.1:8080"}, True),
        ("127.0.0.1", 8081, {"127.0.0.1:8080"}, False),
        ("localhost", 8080, {"127.0.0.1:8080"}, False),
        ("images.mushroomobserver.org", 443, {"mushroomobserver.org"}, False),
        ("::1", 8080, {"[::1]:8080"}, True),
        ("::1", 8080, {"[::1]"}, True),
        ("::1", 8080, {"::1"}, True),
        ("::1", 8081, {"[::1]:8080"}, False),
        ("example.org", 80, set(), False),
    ],
)
def test_allow_list_matches_host_or_host_and_port(host: str, port: int, allowed: set[str], expected: bool) -> None:
    assert is_allowed_host(host, port, frozenset(allowed)) is expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ftp://127.0.0.1/a.jpg", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("gopher://127.0.0.1:70/", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("//127.0.0.1/a.jpg", "http:// or https://"),
        ("127.0.0.1/a.jpg", "http:// or https://"),
        ("http://", "no host"),
        ("http:///a.jpg", "no host"),
        ("http://user:secret@127.0.0.1/a.jpg", "user name or password"),
        ("http://127.0.0.1@127.0.0.2/a.jpg", "user name or password"),
        ("http://127.0.0.1:0/a.jpg", "port"),
        ("http://127.0.0.1:99999/a.jpg", "port"),
        ("http://[::1/a.jpg", "not a valid URL"),
        ("http://exa mple.invalid/a.jpg", "invalid host"),
        ("http://exa%41mple.invalid/a.jpg", "invalid host"),
        ("http://127.0.0.1/" + "a" * MAX_URL_LENGTH, "longer than"),
    ],
)
def test_bad_urls_are_refused_with_a_clear_message(url: str, message: str) -> None:
    with pytest.raises(BadUrl, match=message) as caught:
        check_url(url)
    assert caught.value.status == 400


def test_good_url_is_normalised() -> None:
    url = check_url("  HTTPS://MushroomObserver.org/images/640/1021490.jpg#top ")
    assert str(url) == "https://mushroomobserver.org/images/640/1021490.jpg"
