"""X-Forwarded-For is believed only from CHAMPIPY_TRUSTED_PROXIES: by default a client that
rotates the header stays on its own lockout; behind a named proxy the header is the client."""

from __future__ import annotations

from champipy.store import open_store
from support.accounts import make_account
from support.live_server import client

from .serving import serve_process


def guesses(base_url: str, username: str, forwarded: list[str]) -> list[int]:
    with client(base_url) as c:
        return [
            c.get("/user", auth=(username, f"guess-{i}"), headers={"X-Forwarded-For": address}).status_code
            for i, address in enumerate(forwarded)
        ]


def test_rotated_forwarded_for_does_not_escape_the_lockout_by_default(tmp_path, trained_registry):
    settings = trained_registry.settings_for(tmp_path / "data")
    store = open_store(settings.resolved_database_url)
    user = make_account(store)
    with serve_process(settings, tmp_path / "serve.log") as base_url:
        codes = guesses(base_url, user.username, [f"203.0.113.{i}" for i in range(7)])
    store.close()
    assert codes == [401] * 5 + [429] * 2


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(tmp_path, trained_registry):
    settings = trained_registry.settings_for(tmp_path / "data", trusted_proxies="127.0.0.1")
    store = open_store(settings.resolved_database_url)
    user = make_account(store)
    with serve_process(settings, tmp_path / "serve.log") as base_url:
        locked = guesses(base_url, user.username, ["203.0.113.7"] * 6)
        elsewhere = guesses(base_url, user.username, ["203.0.113.8"])
    store.close()
    assert locked == [401] * 5 + [429]
    assert elsewhere == [401], "another client behind the proxy is not locked by the first one's guesses"
