"""The one place that knows every job kind: serve and worker processes both build it here,
so a job submitted by one can be run by the other."""

from __future__ import annotations

from huey import Huey

from ..mushroom_observer import make_fetch_handler
from ..services.dataset_import import make_import_handler
from ..settings import Settings
from ..store.base import Store
from .queue import DEFAULT_QUEUE_NAME, build_huey
from .runner import JobRunner


def create_runner(
    settings: Settings,
    store: Store,
    *,
    huey: Huey | None = None,
    queue_name: str = DEFAULT_QUEUE_NAME,
    heartbeat_seconds: float = 10.0,
    stale_after_seconds: float = 90.0,
    container=None,
) -> JobRunner:
    """With a serving ``container`` (registry + model provider) the model jobs are handled too."""
    runner = JobRunner(
        store,
        huey or build_huey(settings, queue_name),
        heartbeat_seconds=heartbeat_seconds,
        stale_after_seconds=stale_after_seconds,
    )
    runner.register("import", make_import_handler(store, settings))
    runner.register("fetch", make_fetch_handler(store, settings))
    if container is not None and container.registry is not None:
        register_model_jobs(runner, container)
    if settings.monitor_cron.strip():  # empty: no periodic check in this process
        runner.schedule("monitor", settings.monitor_cron)
    return runner


def consumes_in_process(settings: Settings) -> bool:
    """``champipy serve`` runs the consumer itself unless Redis hands jobs to workers."""
    return not settings.redis_url


def register_model_jobs(runner: JobRunner, container) -> None:
    from ..services.models import FINETUNE, RETRAIN, finetune_handler, retrain_handler
    from ..services.monitoring import MONITOR_JOB, monitor_handler

    settings, store, registry = container.settings, container.store, container.registry
    follow = container.models.refresh if container.models is not None else None
    runner.register(FINETUNE, finetune_handler(settings, store, registry, on_promoted=follow))
    runner.register(RETRAIN, retrain_handler(settings, store, registry, on_promoted=follow))
    runner.register(MONITOR_JOB, monitor_handler(container))
