"""One first model per deployment: replicas starting together on an empty registry take turns.

The first replica to get the lock trains and promotes; the others wait, then find the alias set
and serve it. Where the lock lives follows what the deployment shares:

- PostgreSQL store: a session advisory lock; it is released if the holder's connection dies.
- Redis (with another store): a lock with a lease the holder renews while it trains, so a
  killed holder frees it within the lease.
- Neither: a file lock in data_dir, for processes on one machine.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from ..settings import Settings
from ..store.backends import scheme_of

log = logging.getLogger(__name__)

LEASE_SECONDS = 60


def lock_name(settings: Settings) -> str:
    return f"champipy-first-model-{settings.registered_model}"


@contextmanager
def first_model_lock(settings: Settings) -> Iterator[None]:
    if scheme_of(settings.resolved_database_url).startswith("postgresql"):
        with _postgres_lock(settings):
            yield
    elif settings.redis_url:
        with _redis_lock(settings):
            yield
    else:
        with _file_lock(settings):
            yield


@contextmanager
def _postgres_lock(settings: Settings) -> Iterator[None]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from ..store.sql.engine import engine_url

    key = zlib.crc32(lock_name(settings).encode())  # advisory locks are keyed by a bigint
    engine = create_engine(engine_url(settings.resolved_database_url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            log.info("waiting for the first-model lock (PostgreSQL advisory lock %d)", key)
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


@contextmanager
def _redis_lock(settings: Settings) -> Iterator[None]:
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    lock = client.lock(lock_name(settings), timeout=LEASE_SECONDS, thread_local=False)
    log.info("waiting for the first-model lock (Redis)")
    lock.acquire(blocking=True)
    done = threading.Event()

    def renew() -> None:
        while not done.wait(LEASE_SECONDS / 3):
            lock.reacquire()

    renewer = threading.Thread(target=renew, name="first-model-lease", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join()
        lock.release()
        client.close()


@contextmanager
def _file_lock(settings: Settings) -> Iterator[None]:
    path = settings.ensure_data_dir() / "first-model.lock"
    with path.open("a") as handle:
        log.info("waiting for the first-model lock (%s)", path)
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
