"""Password sign-ins under attack, over HTTP: parallel guesses are counted before they are
verified, strangers cannot lock the admin out, argon2's memory is bounded, and the counters are
shared through Redis by every API process.

Clients connect from other loopback addresses (127.0.0.2, ...: all of 127/8 is this machine)
to play attackers at addresses the admin does not use.
"""

from __future__ import annotations

import secrets
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from champipy.api.app import create_app
from champipy.services.users import add_user
from champipy.settings import Settings
from champipy.store import open_store
from support.accounts import make_account
from support.live_server import live_server

MIB = 1024 * 1024
REDIS_URL = "redis://127.0.0.1:6379/0"


def from_address(base_url: str, address: str) -> httpx.Client:
    return httpx.Client(
        base_url=base_url, transport=httpx.HTTPTransport(local_address=address), trust_env=False, timeout=60
    )


def peak_rss_bytes() -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def metric(text: str, name: str) -> float:
    return float(next(x for x in text.splitlines() if x.startswith(name + " ")).split()[1])


@pytest.fixture
def server(tmp_path):
    def start(**overrides):
        settings = Settings(data_dir=tmp_path / "data", bootstrap_model=False, **overrides)
        settings.ensure_data_dir()
        store = open_store(settings.resolved_database_url)
        stores.append(store)
        return settings, store, live_server(create_app(settings))

    stores: list = []
    yield start
    for store in stores:
        store.close()


def test_forty_parallel_wrong_passwords_get_five_verifications(server):
    settings, store, running = server()
    victim = make_account(store)
    with running as url, from_address(url, "127.0.0.2") as c:
        with ThreadPoolExecutor(40) as pool:
            codes = list(
                pool.map(lambda i: c.get("/user", auth=(victim.username, f"guess-{i}")).status_code, range(40))
            )
    assert codes.count(401) == settings.login_max_failures, codes  # each 401 is one verification
    assert codes.count(429) == 40 - settings.login_max_failures


def test_strangers_cannot_lock_the_admin_out(server):
    settings, store, running = server()
    admin = make_account(store, admin=True, prefix="admin")
    with running as url:
        with from_address(url, "127.0.0.2") as attacker:
            codes = [attacker.get("/user", auth=(admin.username, f"guess-{i}")).status_code for i in range(8)]
            metrics = attacker.get("/metrics").text
        with from_address(url, "127.0.0.1") as own:
            api = own.get("/user", auth=admin.auth)
    assert codes == [401] * 5 + [429] * 3
    assert api.status_code == 200, "the admin's own address is not locked"
    assert metric(metrics, "champipy_login_lockouts_total") == 1


def test_many_addresses_on_one_name_are_slowed_not_locked(server):
    settings, store, running = server(login_user_soft_limit=3, login_user_delay_seconds=0.2)
    user = make_account(store)
    with running as url:
        for n in range(2, 7):  # five addresses, one wrong guess each: no pair reaches its lock
            with from_address(url, f"127.0.0.{n}") as c:
                assert c.get("/user", auth=(user.username, "wrong-password")).status_code == 401
        with from_address(url, "127.0.0.1") as c:
            right = c.get("/user", auth=user.auth)
            metrics = c.get("/metrics").text
    assert right.status_code == 200, "the right password still gets in, after the delay"
    assert metric(metrics, "champipy_login_delays_total") == 3  # the 4th and 5th guesses, and the user's
    assert metric(metrics, "champipy_login_lockouts_total") == 0


def test_malformed_names_are_refused_before_the_store_and_the_throttle(server):
    settings, store, running = server()
    with running as url, from_address(url, "127.0.0.2") as c:
        c.get("/user", auth=("warm-up", "x"))
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        codes = {c.get("/user", auth=(secrets.token_hex(40 + i % 200), "password")).status_code for i in range(1000)}
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        after = c.get("/user", auth=("warm-up", "x"))
    assert codes == {401}
    assert grown < 1 * MIB, f"{grown / MIB:.1f} MiB kept for 1,000 names that cannot exist"
    assert after.status_code == 401, "no lock was reached on their account"


def test_argon2_memory_is_bounded_by_the_verification_slots(server):
    """40 parallel sign-ins of 40 unknown names: each costs an argon2 verify (the dummy hash),
    at most two at a time. Before: 36 parallel verifications, +1.3 GiB."""
    settings, store, running = server(login_concurrent_verifications=2)
    with running as url, from_address(url, "127.0.0.2") as c:
        c.get("/user", auth=("warm-up-user", "wrong-password"))  # the dummy hash is made once

        def peak_growth(request) -> tuple[set[int], int]:
            Path("/proc/self/clear_refs").write_text("5")
            before = peak_rss_bytes()
            with ThreadPoolExecutor(40) as pool:
                codes = set(pool.map(request, range(40)))
            return codes, peak_rss_bytes() - before

        # The same 40 parallel requests without a password check: what threads, sockets and
        # the app cost by themselves in this process, measured here rather than guessed.
        _, overhead = peak_growth(lambda i: c.get("/status").status_code)
        codes, grown = peak_growth(lambda i: c.get("/user", auth=(f"nobody-{i}", "wrong-password")).status_code)
    assert codes == {401}
    argon2 = grown - overhead
    # Two verifications are 128 MiB; the bound leaves as much again for the allocator and the
    # rest of a long test process (one CI run measured 203 MiB). Unbounded, 40 at once: 1.3 GiB.
    assert argon2 < 4 * 64 * MIB, (
        f"+{argon2 / MIB:.0f} MiB over the {overhead / MIB:.0f} MiB of the same requests without a"
        " password: more than two argon2 verifications at once"
    )


def test_utf8_passwords_work_over_basic_and_the_form(server):
    settings, store, running = server()
    add_user(store, "camille", "pässwörd123")
    with running as url, from_address(url, "127.0.0.1") as c:
        basic = c.get("/user", auth=("camille", "pässwörd123"))
        wrong = c.get("/user", auth=("camille", "passwörd123"))
    assert basic.status_code == 200 and wrong.status_code == 401


def test_the_lock_is_shared_by_api_processes_through_redis(server):
    first, store, running_first = server(redis_url=REDIS_URL)
    user = make_account(store)
    second_settings = Settings(data_dir=first.data_dir, bootstrap_model=False, redis_url=REDIS_URL)
    with running_first as url_a, live_server(create_app(second_settings)) as url_b:
        with from_address(url_a, "127.0.0.2") as a:
            codes = [a.get("/user", auth=(user.username, f"guess-{i}")).status_code for i in range(5)]
        with from_address(url_b, "127.0.0.2") as b:
            locked = b.get("/user", auth=user.auth)
        with from_address(url_b, "127.0.0.3") as b:
            other_address = b.get("/user", auth=user.auth)
    assert codes == [401] * 5
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert other_address.status_code == 200


def test_a_remembered_password_needs_no_verification_slot(tmp_path, monkeypatch):
    """Scripts that send Basic on every call keep working while guesses fill the slots."""
    import champipy.services.users as users_module

    monkeypatch.setattr(users_module, "VERIFICATION_WAIT_SECONDS", 0.2)
    settings = Settings(data_dir=tmp_path / "data", bootstrap_model=False)
    settings.ensure_data_dir()
    store = open_store(settings.resolved_database_url)
    regular, newcomer = make_account(store), make_account(store, prefix="newcomer")
    app = create_app(settings)
    with live_server(app) as url, from_address(url, "127.0.0.1") as c:
        assert c.get("/user", auth=regular.auth).status_code == 200  # verified once, remembered
        slots = app.state.container.authenticator.verification_slots
        held = [slots.acquire(timeout=5) for _ in range(settings.login_concurrent_verifications)]
        try:
            remembered = c.get("/user", auth=regular.auth)
            fresh = c.get("/user", auth=newcomer.auth)
        finally:
            for _ in held:
                slots.release()
    store.close()
    assert remembered.status_code == 200
    assert fresh.status_code == 503 and fresh.json()["error"] == "busy" and "retry-after" in fresh.headers
