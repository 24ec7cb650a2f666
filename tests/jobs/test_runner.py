"""Jobs through a real queue (SQLite file and Redis) and a real consumer."""

from __future__ import annotations

import signal
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from champipy.errors import InvalidInput, NotFound
from champipy.jobs import WORKER_STOPPED, JobConsumer, QueueUnavailable, create_runner, parse_cron
from champipy.settings import Settings
from champipy.store import open_store
from champipy.store.base import JobState, utcnow

from .helpers import wait_for, write_dataset


def test_import_job_runs_to_success_with_result_and_progress(runner, consumer, job_store, tmp_path):
    dataset = write_dataset(tmp_path / "dataset", {"Amanita muscaria": 3, "Boletus edulis": 2})
    (dataset / "Boletus edulis" / "notes.txt").write_text("not a photo")

    job = runner.submit("import", {"dir": str(dataset)}, username="admin")
    assert job.state == JobState.QUEUED

    done = wait_for(job_store, job.id)
    assert done.state == JobState.SUCCEEDED, done.error
    assert done.username == "admin"
    assert done.result["added"] == 5
    assert done.result["rejected"] == 1
    assert done.result["added_per_species"] == {"Amanita muscaria": 3, "Boletus edulis": 2}
    assert done.progress == {"done": 6, "total": 6, "added": 5, "duplicates": 0, "rejected": 1}
    assert done.started_at is not None and done.finished_at is not None
    assert job_store.count_images() == 5


def test_failing_handler_marks_the_job_failed_with_a_readable_message(runner, consumer, job_store):
    def explode(params, report):
        report({"step": "mixing"})
        raise RuntimeError(f"the flask broke at {params['temperature']} degrees")

    runner.register("explode", explode)
    job = runner.submit("explode", {"temperature": 451})

    failed = wait_for(job_store, job.id)
    assert failed.state == JobState.FAILED
    assert failed.error == "RuntimeError: the flask broke at 451 degrees"
    assert failed.progress == {"step": "mixing"}
    assert failed.result is None


def test_typed_errors_keep_their_own_message(runner, consumer, job_store):
    def missing(params, report):
        raise NotFound("No model version 7 is registered.")

    runner.register("missing", missing)
    failed = wait_for(job_store, runner.submit("missing").id)
    assert failed.error == "No model version 7 is registered."


def test_import_of_a_missing_folder_fails_cleanly(runner, consumer, job_store, tmp_path):
    failed = wait_for(job_store, runner.submit("import", {"dir": str(tmp_path / "nowhere")}).id)
    assert failed.state == JobState.FAILED
    assert "is not a folder" in failed.error
    assert "Traceback" not in failed.error


def test_heartbeat_goes_on_while_a_long_handler_runs(runner, consumer, job_store):
    release = threading.Event()
    runner.register("long", lambda params, report: {"waited": release.wait(10)})
    job = runner.submit("long")

    running = wait_for(job_store, job.id, states=(JobState.RUNNING,))
    first_beat = running.heartbeat_at
    wait_for_heartbeat_after(job_store, job.id, first_beat)
    # Longer than stale_after_seconds (1 s) since the handler started: still alive.
    time.sleep(1.3)
    assert runner.reap_stale_jobs() == []
    release.set()

    done = wait_for(job_store, job.id)
    assert done.state == JobState.SUCCEEDED
    assert done.result == {"waited": True}


def wait_for_heartbeat_after(store, job_id, moment, timeout=5.0):
    deadline = utcnow() + timedelta(seconds=timeout)
    while utcnow() < deadline:
        if _aware(store.get_job(job_id).heartbeat_at) > _aware(moment):
            return
        time.sleep(0.05)
    raise AssertionError("the heartbeat did not move")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_a_running_job_whose_heartbeat_stopped_is_marked_failed(runner, job_store):
    job = job_store.add_job("import", {}, None)
    job_store.update_job(job.id, state=JobState.RUNNING)

    assert runner.reap_stale_jobs() == []  # fresh heartbeat
    reaped = runner.reap_stale_jobs(now=utcnow() + timedelta(seconds=5))

    assert reaped == [job.id]
    failed = job_store.get_job(job.id)
    assert failed.state == JobState.FAILED
    assert failed.error == WORKER_STOPPED


def test_unknown_kinds_are_refused_before_anything_is_stored(runner, job_store):
    with pytest.raises(InvalidInput):
        runner.submit("teleport", {})
    assert job_store.list_jobs() == []


def test_a_job_whose_kind_the_worker_lacks_fails_instead_of_hanging(runner, job_store, job_settings, queue_name):
    # Submitted by a process that knows "retrain", consumed by one that does not.
    runner.register("retrain", lambda params, report: {})
    other = create_runner(
        job_settings, job_store, queue_name=queue_name, heartbeat_seconds=0.2, stale_after_seconds=1.0
    )
    consumer = JobConsumer(other, max_poll_delay=0.1)
    consumer.start()
    try:
        failed = wait_for(job_store, runner.submit("retrain").id)
    finally:
        consumer.stop(timeout=5)
    assert failed.state == JobState.FAILED
    assert failed.error == "This worker has no handler for jobs of kind 'retrain'."


def test_the_schedule_submits_one_monitor_job_per_slot(runner, consumer, job_store):
    slot = datetime(2024, 6, 3, 6, 0, tzinfo=UTC)  # a Monday 06:00, the default cron
    assert runner.submit_scheduled("monitor", now=slot) is None  # no handler yet: skipped
    assert job_store.list_jobs() == []

    runner.register("monitor", lambda params, report: {"accuracy": 0.81})
    job = runner.submit_scheduled("monitor", now=slot)
    assert job is not None and job.params == {"scheduled_for": "2024-06-03T06:00Z"}
    assert runner.submit_scheduled("monitor", now=slot) is None  # a second scheduler, same minute
    assert wait_for(job_store, job.id).result == {"accuracy": 0.81}


def test_a_schedule_lock_left_by_a_dead_worker_is_cleared_when_a_consumer_starts(runner, job_store):
    runner.register("monitor", lambda params, report: {})
    runner.huey.lock_task("champipy-schedule-monitor").acquire()  # held by a killed worker
    assert runner.submit_scheduled("monitor") is None

    consumer = JobConsumer(runner, max_poll_delay=0.1)
    consumer.start()
    try:
        job = runner.submit_scheduled("monitor")
        assert job is not None
        wait_for(job_store, job.id)
    finally:
        consumer.stop(timeout=5)


def test_the_periodic_task_follows_the_cron_setting(runner, consumer, job_store):
    runner.register("monitor", lambda params, report: {"checked": True})
    due = runner.huey.read_periodic(datetime(2024, 6, 3, 6, 0))  # Monday 06:00 UTC
    assert [task.name for task in due] == ["champipy_schedule_monitor"]
    assert runner.huey.read_periodic(datetime(2024, 6, 4, 6, 0)) == []  # Tuesday

    runner.huey.enqueue(due[0])  # what Huey's scheduler does when the minute comes
    job = wait_until_a_job_exists(job_store)
    assert job.kind == "monitor"
    assert wait_for(job_store, job.id).result == {"checked": True}


def wait_until_a_job_exists(store, timeout=10.0):
    deadline = utcnow() + timedelta(seconds=timeout)
    while utcnow() < deadline:
        jobs = store.list_jobs()
        if jobs:
            return jobs[0]
        time.sleep(0.05)
    raise AssertionError("no job was submitted")


@pytest.mark.parametrize("cron", ["0 6 * *", "61 * * * *", "every monday"])
def test_bad_cron_strings_are_refused(cron):
    with pytest.raises(InvalidInput):
        parse_cron(cron)


def test_the_in_process_consumer_starts_from_any_thread_and_leaves_signals_alone(runner, job_store):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    consumer = JobConsumer(runner, workers=1, max_poll_delay=0.1)
    started = []
    thread = threading.Thread(target=lambda: (consumer.start(), started.append(True)))
    thread.start()
    thread.join(10)
    try:
        assert started == [True]
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
        runner.register("ping", lambda params, report: {"pong": True})
        assert wait_for(job_store, runner.submit("ping").id).result == {"pong": True}
    finally:
        consumer.stop(timeout=5)


def test_an_unreachable_queue_fails_the_job_and_says_so(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(data_dir=tmp_path / "data", redis_url=f"redis://127.0.0.1:{port}/0")
    store = open_store(f"sqlite:///{tmp_path}/t.db")
    try:
        runner = create_runner(settings, store)
        with pytest.raises(QueueUnavailable):
            runner.submit("import", {"dir": str(tmp_path)})
        [job] = store.list_jobs()
        assert job.state == JobState.FAILED
        assert job.error == "The job could not be queued."
    finally:
        store.close()


def test_progress_held_back_by_the_interval_is_written_by_the_heartbeat(runner, consumer, job_store):
    release = threading.Event()

    def rare_reports(params, report):
        report({"stage": "training"})
        report({"stage": "loading"})  # inside the write interval: held back
        return {"waited": release.wait(10)}

    runner.register("rare", rare_reports)
    job = runner.submit("rare")
    running = wait_for(job_store, job.id, states=(JobState.RUNNING,))
    wait_for_heartbeat_after(job_store, job.id, running.heartbeat_at)
    wait_for_heartbeat_after(job_store, job.id, job_store.get_job(job.id).heartbeat_at)
    shown = job_store.get_job(job.id).progress
    release.set()
    assert shown == {"stage": "loading"}, "the latest report shows while the handler is still busy"
    assert wait_for(job_store, job.id).state == JobState.SUCCEEDED


def test_an_empty_monitor_schedule_turns_the_periodic_check_off(job_settings, job_store, queue_name):
    settings = job_settings.model_copy(update={"monitor_cron": ""})
    runner = create_runner(settings, job_store, queue_name=queue_name)
    try:
        assert runner.huey.read_periodic(datetime(2024, 6, 3, 6, 0)) == []
    finally:
        runner.huey.flush()
