"""The job runner every process builds the same way (serve, worker, CLI), so a job
submitted by one can be run by another. The composition root adds the model jobs."""

from __future__ import annotations

from huey import Huey

from ..settings import Settings
from ..store.base import Store
from .handlers import register_data_jobs
from .kinds import DEFAULT_QUEUE_NAME, JobKind
from .queue import build_huey
from .runner import JobRunner


def create_runner(
    settings: Settings,
    store: Store,
    *,
    huey: Huey | None = None,
    queue_name: str = DEFAULT_QUEUE_NAME,
    heartbeat_seconds: float = 10.0,
    stale_after_seconds: float = 90.0,
) -> JobRunner:
    """A runner with the data jobs (import, fetch) and the monitor schedule."""
    runner = JobRunner(
        store,
        huey or build_huey(settings, queue_name),
        heartbeat_seconds=heartbeat_seconds,
        stale_after_seconds=stale_after_seconds,
    )
    register_data_jobs(runner, settings, store)
    if settings.monitor_cron.strip():  # empty: no periodic check in this process
        runner.schedule(JobKind.MONITOR, settings.monitor_cron)
    return runner


def consumes_in_process(settings: Settings) -> bool:
    """``champipy serve`` runs the consumer itself unless Redis hands jobs to workers."""
    return not settings.redis_url
