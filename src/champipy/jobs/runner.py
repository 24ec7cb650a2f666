"""Background jobs: handlers registered by kind, Job records in the Store, Huey underneath.

The Huey task carries only the job id; everything users see (state, progress, result,
error) lives on the Job record, so any process with the Store can show it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from huey import Huey
from huey.api import TaskLock
from huey.exceptions import TaskLockedException

from ..errors import ChampipyError, InvalidInput, QueueUnavailable
from ..store.base import Job, JobState, utcnow
from ..store.ports import JobRepository
from .queue import parse_cron

logger = logging.getLogger(__name__)

Report = Callable[[dict[str, Any]], None]
Handler = Callable[[dict[str, Any], Report], "dict[str, Any] | None"]

WORKER_STOPPED = "worker stopped while the job was running"
MAX_ERROR_CHARS = 1000


class JobRunner:
    """Registry of job handlers plus the Huey task that runs them.

    One runner per Huey instance (Huey refuses two tasks with the same name).
    ``stale_after_seconds`` must leave room for several missed heartbeats: a running job
    whose heartbeat is older than that is declared dead by ``reap_stale_jobs``.
    """

    def __init__(
        self,
        store: JobRepository,
        huey: Huey,
        *,
        heartbeat_seconds: float = 10.0,
        stale_after_seconds: float = 90.0,
        progress_interval: float = 0.5,
    ):
        if stale_after_seconds < 3 * heartbeat_seconds:
            raise ValueError("stale_after_seconds must be at least 3 heartbeats long")
        self.store = store
        self.huey = huey
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_after_seconds = stale_after_seconds
        self.progress_interval = progress_interval
        self._handlers: dict[str, Handler] = {}
        self._schedule_locks: dict[str, TaskLock] = {}
        self._run_task = huey.task(name="champipy_run_job")(self.run_job)

    # --- registry --------------------------------------------------------------------
    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[str(kind)] = handler  # a JobKind is stored by its plain name

    @property
    def kinds(self) -> list[str]:
        return sorted(self._handlers)

    # --- submitting ------------------------------------------------------------------
    def submit(self, kind: str, params: dict[str, Any] | None = None, username: str | None = None) -> Job:
        """Record a QUEUED job and put its id on the queue."""
        kind = str(kind)
        if kind not in self._handlers:
            raise InvalidInput(f"Unknown job kind {kind!r}; known kinds: {', '.join(self.kinds) or 'none'}.")
        job = self.store.add_job(kind, dict(params or {}), username)
        try:
            self._run_task(job.id)
        except Exception as exc:
            logger.exception("Could not queue job %s (%s)", job.id, kind)
            self.store.update_job(job.id, state=JobState.FAILED, error="The job could not be queued.")
            raise QueueUnavailable("The job queue cannot be reached; try again later.") from exc
        return job

    def schedule(self, kind: str, cron: str) -> None:
        """Submit a job of ``kind`` whenever the 5-field cron expression matches (UTC)."""
        validate = parse_cron(cron)
        # Created now so that Huey knows the lock's name and a consumer starting with
        # flush_locks clears it if a worker died holding it.
        self._schedule_locks[kind] = self.huey.lock_task(f"champipy-schedule-{kind}")

        def submit_scheduled_job() -> None:
            self.submit_scheduled(kind)

        self.huey.periodic_task(validate, name=f"champipy_schedule_{kind}")(submit_scheduled_job)

    def submit_scheduled(self, kind: str, now: datetime | None = None) -> Job | None:
        """Submit one job for this minute's slot, even when several consumers run a scheduler."""
        if kind not in self._handlers:
            logger.warning("Scheduled job kind %r has no handler; skipped.", kind)
            return None
        slot = (now or utcnow()).strftime("%Y-%m-%dT%H:%MZ")
        try:
            lock = self._schedule_locks.get(kind) or self.huey.lock_task(f"champipy-schedule-{kind}")
            with lock:
                for job in self.store.list_jobs(limit=50):
                    if job.kind == kind and job.params.get("scheduled_for") == slot:
                        return None
                return self.submit(kind, {"scheduled_for": slot}, username=None)
        except TaskLockedException:
            return None  # another consumer is submitting this slot right now

    # --- running ---------------------------------------------------------------------
    def run_job(self, job_id: str) -> None:
        """The Huey task's body: QUEUED -> RUNNING -> SUCCEEDED | FAILED."""
        job = self.store.get_job(job_id)
        if job is None:
            logger.warning("Job %s is not in the store; skipped.", job_id)
            return
        if job.state != JobState.QUEUED:
            logger.warning("Job %s is %s, not queued; skipped.", job_id, job.state)
            return
        handler = self._handlers.get(job.kind)
        if handler is None:
            self.store.update_job(
                job_id, state=JobState.FAILED, error=f"This worker has no handler for jobs of kind {job.kind!r}."
            )
            return

        self.store.update_job(job_id, state=JobState.RUNNING)
        reporter = _ProgressReporter(self.store, job_id, self.progress_interval)
        result: dict[str, Any] | None = None
        error: str | None = None
        with _Heartbeat(self.store, job_id, self.heartbeat_seconds, reporter.take_pending):
            try:
                result = dict(handler(dict(job.params), reporter.report) or {})
            except Exception as exc:
                logger.exception("Job %s (%s) failed", job_id, job.kind)
                error = readable_error(exc)
        if error is None:
            self.store.update_job(job_id, state=JobState.SUCCEEDED, result=result, progress=reporter.latest)
            logger.info("Job %s (%s) succeeded", job_id, job.kind)
        else:
            self.store.update_job(job_id, state=JobState.FAILED, error=error, progress=reporter.latest)

    def reap_stale_jobs(self, now: datetime | None = None) -> list[str]:
        """Mark FAILED every RUNNING job whose heartbeat stopped; returns their ids."""
        deadline = (now or utcnow()) - timedelta(seconds=self.stale_after_seconds)
        reaped = []
        for job in self.store.list_jobs(limit=1000, state=JobState.RUNNING):
            last_sign_of_life = job.heartbeat_at or job.started_at or job.created_at
            if _as_utc(last_sign_of_life) < deadline:
                self.store.update_job(job.id, state=JobState.FAILED, error=WORKER_STOPPED)
                logger.warning("Job %s (%s): %s.", job.id, job.kind, WORKER_STOPPED)
                reaped.append(job.id)
        return reaped


def readable_error(exc: BaseException) -> str:
    """One line for people; the traceback goes to the log."""
    if isinstance(exc, ChampipyError):
        message = exc.detail
    else:
        text = str(exc).strip()
        message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return message[:MAX_ERROR_CHARS]


def _as_utc(moment: datetime) -> datetime:
    # Some backends hand back naive datetimes; they are stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _ProgressReporter:
    """The ``report`` callable given to handlers; writes at most once per interval."""

    def __init__(self, store: JobRepository, job_id: str, interval: float):
        self._store = store
        self._job_id = job_id
        self._interval = interval
        self._written_at = float("-inf")
        self._pending = False
        self.latest: dict[str, Any] | None = None

    def take_pending(self) -> dict[str, Any] | None:
        """Progress held back by the interval, for the heartbeat to write: a handler that
        reports rarely (one event per long epoch) still shows its latest state."""
        if not self._pending:
            return None
        self._pending = False
        return self.latest

    def report(self, progress: dict[str, Any]) -> None:
        self.latest = dict(progress)
        self._pending = True
        now = time.monotonic()
        if now - self._written_at < self._interval:
            return
        self._written_at = now
        self._pending = False
        try:
            self._store.update_job(self._job_id, progress=self.latest)
        except Exception:
            # A database blip must not fail a long job; the final update carries the latest.
            logger.warning("Could not store progress of job %s", self._job_id, exc_info=True)


class _Heartbeat:
    """Refreshes the job's heartbeat from a thread, so long handlers stay visibly alive."""

    def __init__(
        self,
        store: JobRepository,
        job_id: str,
        interval: float,
        pending: Callable[[], dict[str, Any] | None] = lambda: None,
    ):
        self._store = store
        self._job_id = job_id
        self._interval = interval
        self._pending = pending
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        # Joined without a timeout: a late heartbeat must never land after the final state.
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._store.update_job(self._job_id, progress=self._pending())
            except Exception:
                logger.warning("Heartbeat of job %s failed", self._job_id, exc_info=True)
