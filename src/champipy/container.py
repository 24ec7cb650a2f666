"""Composition root: builds the real adapters once and hands them to the API and the CLI."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from .services.login_throttle import LoginThrottle, throttle_storage
from .services.users import Authenticator, ensure_first_admin
from .settings import Settings
from .store import Store, open_store

log = logging.getLogger(__name__)


@dataclass
class Container:
    settings: Settings
    store: Store
    authenticator: Authenticator
    models: object = None  # services.model_provider.ModelProvider, built on first use
    predictor: object = None  # services.predict.PredictionService
    registry: object = None  # registry.Registry
    jobs: object = None  # jobs.JobRunner
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

    def model_status(self) -> dict:
        return self.models.status() if self.models is not None else {"loaded": False}

    def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:
                log.exception("error while shutting down")
        self.store.close()


def build_container(settings: Settings, *, serving: bool = False) -> Container:
    """The store and auth always; with ``serving`` also the model provider and predictor."""
    settings.ensure_data_dir()
    store = open_store(settings.resolved_database_url)
    throttle = LoginThrottle(
        throttle_storage(settings.redis_url), settings.login_max_failures, settings.login_lockout_seconds,
        user_soft_limit=settings.login_user_soft_limit, user_delay_seconds=settings.login_user_delay_seconds)
    container = Container(settings=settings, store=store, authenticator=Authenticator(
        store, throttle, token_cache_seconds=settings.token_cache_seconds,
        concurrent_verifications=settings.login_concurrent_verifications))
    if settings.admin_password and ensure_first_admin(store, settings.admin_password):
        log.info("created the first admin account 'admin' from CHAMPIPY_ADMIN_PASSWORD")
    if serving:
        _add_serving(container)
    return container


def _add_serving(container: Container) -> None:
    from .fetch import SafeFetcher
    from .model.classifier import Classifier
    from .registry import Registry
    from .services.model_provider import ModelProvider
    from .services.predict import PredictionService
    from .services.quota import DailyQuota
    from .services.spool import ImageSpool

    settings = container.settings
    container.registry = Registry(settings)
    container.models = ModelProvider(
        container.registry,
        lambda directory: Classifier.load(directory, threads=settings.inference_threads),
        model_name=settings.registered_model,
        alias=settings.production_alias,
        poll_seconds=settings.model_poll_seconds,
    )
    fetcher = SafeFetcher(settings)
    spool = ImageSpool(settings.data_dir / "spool", settings.spool_max_files, settings.spool_max_bytes)
    quota = DailyQuota(throttle_storage(settings.redis_url), settings.daily_predictions_per_user)
    container.predictor = PredictionService(settings, container.store, container.models, fetcher, spool, quota)
    container.on_close(fetcher.close)


def add_job_runner(container: Container, *, consume: bool) -> None:
    """Jobs for the API; ``consume`` also runs them in this process (no Redis workers)."""
    from .jobs import JobConsumer, create_runner

    container.jobs = create_runner(container.settings, container.store, container=container)
    if consume:
        consumer = JobConsumer(container.jobs)
        container.on_start(consumer.start)
        container.on_close(consumer.stop)


def build_server_container(settings: Settings) -> Container:
    """What ``champipy serve`` runs: serving, the alias poller, and jobs (in-process by default)."""
    from .jobs import consumes_in_process

    container = build_container(settings, serving=True)
    container.on_start(container.models.start)
    container.on_close(container.models.stop)
    add_job_runner(container, consume=consumes_in_process(settings))
    return container
