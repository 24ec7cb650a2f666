"""Consuming jobs: Huey's consumer with thread workers, plus a reaper for dead workers' jobs.

``start()``/``stop()`` run it inside another process (``champipy serve``) without signal
handlers, which only the main thread may install and which belong to the web server there.
``run()`` blocks and handles SIGINT/SIGTERM, for ``champipy worker``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from huey.consumer import Consumer

from .runner import JobRunner

logger = logging.getLogger(__name__)


class _Consumer(Consumer):  # type: ignore[misc]  # huey ships no types
    def __init__(self, *args: Any, install_signal_handlers: bool, on_started: Callable[[], None], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._install_signal_handlers = install_signal_handlers
        self._on_started = on_started

    def start(self) -> None:
        super().start()
        # After the signal handlers: a worker stopped right after its first reap exits cleanly.
        self._on_started()

    def _set_signal_handlers(self) -> None:
        if self._install_signal_handlers:
            super()._set_signal_handlers()


class JobConsumer:
    def __init__(
        self,
        runner: JobRunner,
        *,
        workers: int = 1,
        periodic: bool = True,
        reap_interval: float | None = None,
        max_poll_delay: float = 1.0,
    ):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.runner = runner
        self.workers = workers
        self.periodic = periodic
        self.reap_interval = reap_interval or runner.stale_after_seconds / 3
        self.max_poll_delay = max_poll_delay
        self._consumer: _Consumer | None = None
        self._stopping = threading.Event()
        self._reaper: threading.Thread | None = None

    def start(self) -> None:
        """Start workers, scheduler and reaper threads and return at once."""
        self._consumer = self._make_consumer(install_signal_handlers=False)
        self._consumer.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking jobs; wait up to ``timeout`` seconds for running ones.

        A job still running afterwards dies with the process and is reaped later.
        """
        self._stop_reaper()
        if self._consumer is not None:
            self._consumer.shutdown_timeout = timeout
            self._consumer.stop(graceful=True)
            self._consumer = None

    def run(self) -> None:
        """Consume until SIGINT (finish running jobs) or SIGTERM (stop now); main thread only."""
        try:
            self._make_consumer(install_signal_handlers=True).run()
        finally:
            self._stop_reaper()

    def _make_consumer(self, *, install_signal_handlers: bool) -> _Consumer:
        return _Consumer(
            self.runner.huey,
            workers=self.workers,
            periodic=self.periodic,
            worker_type="thread",
            # The default backs off to 10 s between polls of an idle SQLite queue; jobs
            # submitted from the web page should start within a second.
            max_delay=self.max_poll_delay,
            flush_locks=True,
            install_signal_handlers=install_signal_handlers,
            on_started=self._start_reaper,
        )

    def _start_reaper(self) -> None:
        self._stopping.clear()
        self._reap()
        self._reaper = threading.Thread(target=self._reap_periodically, name="job-reaper", daemon=True)
        self._reaper.start()

    def _stop_reaper(self) -> None:
        self._stopping.set()
        if self._reaper is not None:
            self._reaper.join()
            self._reaper = None

    def _reap_periodically(self) -> None:
        while not self._stopping.wait(self.reap_interval):
            self._reap()

    def _reap(self) -> None:
        try:
            self.runner.reap_stale_jobs()
        except Exception:
            logger.warning("Could not check for jobs whose worker stopped", exc_info=True)
