"""Back-pressure, refusing at once instead of queueing without end.

``AdmissionGate``: at most ``limit`` predictions decoded and computed at once; beyond it 503
with Retry-After. ``PerUserLimit``: at most ``limit`` URL downloads in flight per user; beyond
it 429, so one user's slow URLs cannot take every download connection.

Only the computation is admitted here: a URL download happens before it (a slow remote
holds no slot) and an answer from the cache never asks. Refusing before anything is decoded
or stored means a refused request leaves nothing half-written.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import Busy, TooManyFetches


class InFlight:
    """How many threads are inside a block now (for /metrics)."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self._count

    @contextmanager
    def inside(self) -> Iterator[None]:
        with self._lock:
            self._count += 1
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1


class AdmissionGate:
    def __init__(self, limit: int, retry_after_seconds: int = 1):
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds
        self._slots = threading.BoundedSemaphore(limit)
        self._count_lock = threading.Lock()
        self._admitted = InFlight()
        self._refused = 0

    @property
    def pending(self) -> int:
        return self._admitted.count

    @property
    def refused(self) -> int:
        return self._refused

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            with self._count_lock:
                self._refused += 1
            raise Busy(
                f"The service is computing {self.limit} predictions already; try again in a moment.",
                retry_after=self.retry_after_seconds,
            )
        try:
            with self._admitted.inside():
                yield
        finally:
            self._slots.release()


class PerUserLimit:
    def __init__(self, limit: int, retry_after_seconds: int = 2):
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds
        self._in_flight: dict[str, int] = {}  # only users with one in flight: bounded by them
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Downloads in progress, all users together."""
        with self._lock:
            return sum(self._in_flight.values())

    @contextmanager
    def slot(self, username: str) -> Iterator[None]:
        with self._lock:
            count = self._in_flight.get(username, 0)
            if count >= self.limit:
                raise TooManyFetches(
                    f"You have {self.limit} downloads in progress already; wait for one to end.",
                    retry_after=self.retry_after_seconds,
                )
            self._in_flight[username] = count + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._in_flight[username] - 1
                if left:
                    self._in_flight[username] = left
                else:
                    del self._in_flight[username]
