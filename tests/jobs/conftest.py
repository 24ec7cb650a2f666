from __future__ import annotations

import uuid

import pytest
import redis

from champipy.jobs import JobConsumer, create_runner
from champipy.settings import Settings
from champipy.store import open_store

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The local Redis; like the other services, a missing one fails the tests that need it."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({error}); start redis-server.", pytrace=False)
    return REDIS_URL


@pytest.fixture
def queue_name() -> str:
    return f"champipy-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["sqlite", "redis"])
def job_settings(request, tmp_path) -> Settings:
    """Both queue backends; the Store is a SQLite file either way."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path}/t.db",
        redis_url=request.getfixturevalue("redis_url") if request.param == "redis" else "",
    )


@pytest.fixture
def job_store(job_settings):
    job_settings.ensure_data_dir()
    store = open_store(job_settings.database_url)
    yield store
    store.close()


@pytest.fixture
def runner(job_settings, job_store, queue_name):
    runner = create_runner(
        job_settings, job_store, queue_name=queue_name, heartbeat_seconds=0.2, stale_after_seconds=1.0
    )
    yield runner
    runner.huey.flush()  # removes this test's Redis keys (or empties its SQLite queue)


@pytest.fixture
def consumer(runner):
    consumer = JobConsumer(runner, workers=2, max_poll_delay=0.1)
    consumer.start()
    yield consumer
    consumer.stop(timeout=5)
