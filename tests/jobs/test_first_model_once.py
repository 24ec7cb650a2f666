"""Replicas starting together on an empty registry train exactly one first model: each lock
kind (PostgreSQL advisory lock, Redis lease, file lock) makes the others wait, and they find
the alias set when their turn comes. Threads play the replicas; every lock is taken on a
connection (or file handle) of its own, as separate processes would."""

from __future__ import annotations

import threading
import time

import pytest

from champipy.services.bootstrap import first_model_once
from champipy.settings import Settings


class AliasBoard:
    """The one thing first_model_once asks of the registry: which version the alias names."""

    def __init__(self) -> None:
        self.version: str | None = None

    def alias_version(self, alias: str) -> str | None:
        return self.version


@pytest.fixture(params=["postgresql", "redis", "file"])
def lock_settings(request, tmp_path) -> Settings:
    database_url, redis_url = f"sqlite:///{tmp_path}/store.db", ""
    if request.param == "postgresql":
        database_url = request.getfixturevalue("postgres_database").empty_store_url()
    elif request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url,
        registered_model=f"lock-test-{tmp_path.name}",
    )


def test_replicas_starting_together_train_one_first_model(lock_settings):
    board = AliasBoard()
    trainings: list[str] = []
    inside = threading.Semaphore(1)
    overlaps: list[str] = []

    def replica(name: str) -> None:
        def train() -> None:
            if not inside.acquire(blocking=False):
                overlaps.append(name)
                return
            trainings.append(name)
            time.sleep(0.3)  # long enough that the others arrive while it trains
            board.version = "1"
            inside.release()

        first_model_once(lock_settings, board, train)

    replicas = [threading.Thread(target=replica, args=(f"replica-{i}",)) for i in range(3)]
    for thread in replicas:
        thread.start()
    for thread in replicas:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in replicas)
    assert len(trainings) == 1 and overlaps == []


def test_a_replica_that_finds_a_model_takes_no_lock(lock_settings):
    board = AliasBoard()
    board.version = "3"
    assert first_model_once(lock_settings, board, lambda: pytest.fail("must not train")) is False


def test_a_failed_first_training_frees_the_lock_for_the_next_replica(lock_settings):
    board = AliasBoard()

    def crash() -> None:
        raise RuntimeError("out of disk")

    with pytest.raises(RuntimeError):
        first_model_once(lock_settings, board, crash)

    def train() -> None:
        board.version = "1"

    assert first_model_once(lock_settings, board, train) is True
