"""One user's slow URLs cannot starve everyone else's: downloads in flight are limited per
user (429), a full connection pool is reported as busy (503), not as the remote's timeout,
and /status answers meanwhile."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from champipy.api.app import create_app
from champipy.store import open_store
from support.accounts import make_account
from support.drip_server import DripServer
from support.image_server import ImageServer
from support.live_server import client, live_server


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the slow downloads never started"
        time.sleep(0.02)


@pytest.fixture
def world(tmp_path, trained_registry):
    probe = trained_registry.settings_for(tmp_path / "probe")
    photo = next(p for p in sorted(Path(probe.eval_dir).rglob("*.jpg"))).read_bytes()
    with ImageServer({"/photo.jpg": (200, photo, "image/jpeg")}) as images, DripServer() as drip:

        def start(**overrides):
            settings = trained_registry.settings_for(
                tmp_path / "data",
                fetch_allow_hosts=f"{images.host},{drip.host}",
                fetch_read_timeout=4.0,
                fetch_connect_timeout=1.0,
                **overrides,
            )
            store = open_store(settings.resolved_database_url)
            stores.append(store)
            return (
                make_account(store, prefix="slow"),
                make_account(store, prefix="other"),
                live_server(create_app(settings)),
            )

        stores: list = []
        yield start, images, drip
        for store in stores:
            store.close()


def hold_slow_downloads(base_url: str, account, drip: DripServer, count: int) -> list[threading.Thread]:
    def one(i: int) -> None:
        with client(base_url, auth=account.auth) as c:
            c.get("/predictions", params={"file": drip.url(f"/slow-{i}.jpg")})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    wait_for(lambda: drip.connections >= count)
    return threads


def test_a_users_downloads_in_flight_are_limited_and_others_are_served(world):
    start, images, drip = world
    slow, other, running = start(fetch_per_user=2)
    with running as base_url:
        threads = hold_slow_downloads(base_url, slow, drip, 2)
        with client(base_url, auth=slow.auth) as c:
            third = c.get("/predictions", params={"file": images.url("/photo.jpg")})
        with client(base_url, auth=other.auth) as c:
            others = c.get("/predictions", params={"file": images.url("/photo.jpg")})
        for thread in threads:
            thread.join(30)
    assert third.status_code == 429 and third.json()["error"] == "too_many_fetches"
    assert int(third.headers["retry-after"]) >= 1
    assert others.status_code == 200, others.text


def test_a_full_pool_is_busy_not_a_remote_timeout_and_status_still_answers(world):
    start, images, drip = world
    slow, other, running = start(fetch_per_user=2, fetch_max_connections=2)
    with running as base_url:
        threads = hold_slow_downloads(base_url, slow, drip, 2)
        with client(base_url, auth=other.auth) as c:
            waiting = c.get("/predictions", params={"file": images.url("/photo.jpg")})
            status = c.get("/status")
        for thread in threads:
            thread.join(30)
        with client(base_url, auth=other.auth) as c:
            after = c.get("/predictions", params={"file": images.url("/photo.jpg")})
    assert waiting.status_code == 503 and waiting.json()["error"] == "busy", waiting.text
    assert int(waiting.headers["retry-after"]) >= 1
    assert status.status_code == 200
    assert after.status_code == 200, "the pool is free again once the slow downloads end"
