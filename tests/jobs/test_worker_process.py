"""``champipy worker`` as a real process on Redis: killed mid-job, then noticed by the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from champipy.jobs import WORKER_STOPPED, create_runner
from champipy.settings import Settings
from champipy.store import open_store
from champipy.store.base import JobState

from .helpers import wait_for, write_dataset

IMAGES = 30
PACE_SECONDS = 0.2  # the import lasts ~6 s: long enough to be killed in the middle


@pytest.fixture
def worker_env(tmp_path, redis_url) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAMPIPY_")}
    env.update(
        CHAMPIPY_DATA_DIR=str(tmp_path / "data"),
        CHAMPIPY_DATABASE_URL=f"sqlite:///{tmp_path}/t.db",
        CHAMPIPY_REDIS_URL=redis_url,
    )
    return env


def start_worker(env: dict[str, str], queue_name: str, log: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "champipy",
        "worker",
        "--queue",
        queue_name,
        "--heartbeat-seconds",
        "0.3",
        "--stale-after-seconds",
        "2",
    ]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_for_progress(store, job_id: str, done: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (store.get_job(job_id).progress or {}).get("done", 0) < done:
        assert time.monotonic() < deadline, "the import made no progress"
        time.sleep(0.05)


def test_a_job_of_a_killed_worker_is_marked_failed_by_the_next_worker(tmp_path, worker_env, queue_name):
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=worker_env["CHAMPIPY_DATABASE_URL"],
        redis_url=worker_env["CHAMPIPY_REDIS_URL"],
    )
    settings.ensure_data_dir()
    dataset = write_dataset(tmp_path / "dataset", {"Amanita muscaria": IMAGES})
    store = open_store(settings.database_url)
    submitter = create_runner(settings, store, queue_name=queue_name)
    log = tmp_path / "workers.log"
    try:
        job = submitter.submit("import", {"dir": str(dataset), "pace_seconds": PACE_SECONDS})

        first = start_worker(worker_env, queue_name, log)
        try:
            wait_for(store, job.id, states=(JobState.RUNNING,), timeout=30)
            wait_for_progress(store, job.id, done=2)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert store.get_job(job.id).state == JobState.RUNNING  # nobody has noticed yet

        second = start_worker(worker_env, queue_name, log)
        try:
            failed = wait_for(store, job.id, timeout=30)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(15) == 0, log.read_text()

        assert failed.state == JobState.FAILED, log.read_text()
        assert failed.error == WORKER_STOPPED
        assert 2 <= failed.progress["done"] < IMAGES
    finally:
        submitter.huey.flush()
        store.close()
