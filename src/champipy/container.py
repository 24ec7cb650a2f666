"""Composition root: builds the real adapters once and hands each service the parts it uses.

``build_container`` gives every process the store and sign-in; ``serving=True`` adds the
registry, the model provider, predictions, the model lifecycle, the monitor and a job runner
(to submit jobs; ``consume_jobs_here`` also runs them in this process).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from limits.storage import Storage

from .services.login_throttle import LoginThrottle, throttle_storage
from .services.prediction_events import PredictionEvents
from .services.token_revocations import RevocationClock
from .services.users import Authenticator, ensure_first_admin
from .settings import Settings
from .store import Store, open_store

if TYPE_CHECKING:
    from .jobs.runner import JobRunner
    from .registry import Registry
    from .services.lifecycle import ModelLifecycle
    from .services.monitor import Monitor
    from .services.observations import ObservationService
    from .services.predict import PredictionService
    from .services.serving import ModelProvider

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerOptions:
    """How this process's job runner talks to the queue (the worker command sets them)."""

    queue_name: str | None = None  # None: the default queue
    heartbeat_seconds: float = 10.0
    stale_after_seconds: float = 90.0


@dataclass
class Container:
    settings: Settings
    store: Store
    authenticator: Authenticator
    counters: Storage  # rate-limit counters (limits library): sign-in throttle, daily quota
    prediction_events: PredictionEvents = field(default_factory=PredictionEvents)
    # With serving=True:
    registry: Registry | None = None
    models: ModelProvider | None = None
    predictor: PredictionService | None = None
    observations: ObservationService | None = None
    jobs: JobRunner | None = None
    lifecycle: ModelLifecycle | None = None
    monitor: Monitor | None = None
    _starters: list[Callable[[], None]] = field(default_factory=list)
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def start(self) -> None:
        """Start background parts (model polling, job consumer); called once the app runs."""
        for starter in self._starters:
            starter()

    def on_start(self, starter: Callable[[], None]) -> None:
        self._starters.append(starter)

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def model_status(self) -> dict[str, Any]:
        return self.models.status() if self.models is not None else {"loaded": False}

    def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:
                log.exception("error while shutting down")
        self.store.close()


def build_container(
    settings: Settings, *, serving: bool = False, runner_options: RunnerOptions | None = None
) -> Container:
    """The store and auth always; with ``serving`` also models, predictions and jobs."""
    settings.ensure_data_dir()
    store = open_store(settings.resolved_database_url)
    # One counter storage (memory, or Redis shared by every replica) for the sign-in throttle
    # and the daily quota; their keys live in separate namespaces.
    counters = throttle_storage(settings.redis_url)
    throttle = LoginThrottle(
        counters,
        settings.login_max_failures,
        settings.login_lockout_seconds,
        user_soft_limit=settings.login_user_soft_limit,
        user_delay_seconds=settings.login_user_delay_seconds,
    )
    container = Container(
        settings=settings,
        store=store,
        counters=counters,
        authenticator=Authenticator(
            store,
            throttle,
            token_cache_seconds=settings.token_cache_seconds,
            concurrent_verifications=settings.login_concurrent_verifications,
            rehash_legacy_passwords=settings.rehash_legacy_passwords,
            revocations=RevocationClock(counters),
        ),
    )
    if settings.admin_password and ensure_first_admin(store, settings.admin_password):
        log.info("created the first admin account 'admin' from CHAMPIPY_ADMIN_PASSWORD")
    if serving:
        _add_serving(container, runner_options or RunnerOptions())
    return container


def _add_serving(container: Container, options: RunnerOptions) -> None:
    from .alerts import post_alert
    from .fetch import SafeFetcher
    from .jobs.handlers import register_model_jobs
    from .jobs.kinds import DEFAULT_QUEUE_NAME
    from .jobs.wiring import create_runner
    from .model.classifier import Classifier
    from .registry import Registry
    from .services.lifecycle import ModelLifecycle
    from .services.monitor import Monitor
    from .services.observations import ObservationService
    from .services.predict import PredictionService
    from .services.quota import DailyQuota
    from .services.serving import ModelProvider
    from .services.spool import open_spool

    settings, store = container.settings, container.store
    registry = Registry(settings)
    models = ModelProvider(
        registry,
        lambda directory: Classifier.load(
            directory, threads=settings.inference_threads, spinning=settings.inference_spinning
        ),
        model_name=settings.registered_model,
        alias=settings.production_alias,
        poll_seconds=settings.model_poll_seconds,
    )
    fetcher = SafeFetcher(settings)
    spool = open_spool(settings)
    quota = DailyQuota(container.counters, settings.daily_predictions_per_user)
    jobs = create_runner(
        settings,
        store,
        queue_name=options.queue_name or DEFAULT_QUEUE_NAME,
        heartbeat_seconds=options.heartbeat_seconds,
        stale_after_seconds=options.stale_after_seconds,
    )
    lifecycle = ModelLifecycle(settings, store, registry, models, jobs)
    monitor = Monitor(settings, store, models, registry, lifecycle, alert=lambda payload: post_alert(settings, payload))
    register_model_jobs(jobs, lifecycle, monitor)
    container.registry, container.models, container.jobs = registry, models, jobs
    container.lifecycle, container.monitor = lifecycle, monitor
    container.predictor = PredictionService(
        settings, store, models, fetcher, spool, quota, observer=container.prediction_events
    )
    container.observations = ObservationService(settings, store, container.predictor)
    container.on_close(fetcher.close)
    container.on_close(container.observations.close)


def consume_jobs_here(container: Container) -> None:
    """Run the queued jobs in this process too (no separate workers)."""
    from .jobs import JobConsumer

    if container.jobs is None:
        raise RuntimeError("jobs need a serving container (build_container(..., serving=True))")
    consumer = JobConsumer(container.jobs)
    container.on_start(consumer.start)
    container.on_close(consumer.stop)


def build_server_container(settings: Settings) -> Container:
    """What ``champipy serve`` runs: serving, the alias poller, and jobs (in-process by default)."""
    from .jobs import consumes_in_process

    container = build_container(settings, serving=True)
    assert container.models is not None
    container.on_start(container.models.start)
    container.on_close(container.models.stop)
    if consumes_in_process(settings):
        consume_jobs_here(container)
    return container
