"""A token revoked through one API replica is refused by every other one at once, although
each replica remembers a token's user for a while (two Authenticators on one store play two
replicas; with Redis they share nothing but the store and Redis, as two processes would)."""

from __future__ import annotations

import pytest
import redis

from champipy.errors import Unauthorized
from champipy.services import users
from champipy.services.login_throttle import LoginThrottle, throttle_storage
from champipy.services.token_revocations import RevocationClock
from champipy.store import open_store
from support.accounts import make_account

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def store(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/users.db")
    yield store
    store.close()


def replica(store, counters_url: str, shared: bool = True) -> users.Authenticator:
    """What build_container gives each process: its own counters client, caches and key."""
    counters = throttle_storage(counters_url)
    return users.Authenticator(
        store,
        LoginThrottle(counters, 5, 60),
        token_cache_seconds=600,  # far longer than the test: only the clock can make B forget
        revocations=RevocationClock(counters) if shared else None,
    )


@pytest.fixture(params=["redis", "memory"])
def counters_url(request):
    if request.param == "memory":
        return "memory://"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({error}); start redis-server.", pytrace=False)
    return REDIS_URL


def test_revoked_on_one_replica_is_refused_by_the_other_at_once(store, counters_url):
    if counters_url == "memory://":
        # Memory counters are per process: one Authenticator revoking and checking is all a
        # single process can show.
        a = b = replica(store, counters_url)
    else:
        a, b = replica(store, counters_url), replica(store, counters_url)
    account = make_account(store)
    issued = users.create_token(store, account.username, "phone")
    other = users.create_token(store, account.username, "laptop")
    assert b.with_token(issued.token).username == account.username  # now remembered by B
    assert b.remembered_token_user(issued.token) is not None

    users.revoke_token(store, account.username, issued.record.id)
    a.forget_tokens_of(account.username)

    with pytest.raises(Unauthorized):
        b.with_token(issued.token)
    assert b.with_token(other.token).username == account.username  # the unrevoked one still works


def test_without_the_shared_clock_the_other_replica_keeps_accepting(store):
    # The failure the clock prevents: B answers from its memory for token_cache_seconds.
    a, b = replica(store, REDIS_URL, shared=False), replica(store, REDIS_URL, shared=False)
    account = make_account(store)
    issued = users.create_token(store, account.username, "phone")
    b.with_token(issued.token)
    users.revoke_token(store, account.username, issued.record.id)
    a.forget_tokens_of(account.username)
    assert b.with_token(issued.token).username == account.username


def test_an_unreadable_clock_means_the_store_is_asked(store, tmp_path):
    counters = throttle_storage("redis://127.0.0.1:1/0")  # nothing listens: every read fails
    auth = users.Authenticator(store, LoginThrottle(throttle_storage(""), 5, 60), revocations=RevocationClock(counters))
    account = make_account(store)
    issued = users.create_token(store, account.username, "phone")
    assert auth.with_token(issued.token).username == account.username
    assert auth.remembered_token_user(issued.token) is None  # nothing counts as remembered
    users.revoke_token(store, account.username, issued.record.id)
    with pytest.raises(Unauthorized):
        auth.with_token(issued.token)
