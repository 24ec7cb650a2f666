"""Slowing password guessing without giving strangers a way to lock anyone out.

- Hard lock on (user name, client address): after ``max_failures`` failed sign-ins in
  ``lockout_seconds``, that pair gets 429 until the window ends. Someone else guessing the
  admin's password from another address does not lock the admin out.
- Soft limit per user name, from any address: beyond ``user_soft_limit`` attempts in the
  window, every further attempt on that name waits ``user_delay_seconds`` before it is checked
  (a distributed guess slows down; the right password still gets in).
- Attempts are counted *before* the password is verified, so parallel guesses cannot slip
  past the limit while the first ones are still being verified.

Counters are fixed windows from ``limits``: in process memory by default, in Redis (shared by
every API process) when ``CHAMPIPY_REDIS_URL`` is set. Idle keys expire with their window.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from ..errors import TooManyAttempts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reservation:
    """One counted attempt; ``last_before_lock`` means failing it locks the pair."""

    username: str
    address: str
    last_before_lock: bool


class LoginThrottle:
    def __init__(
        self,
        storage: Storage,
        max_failures: int,
        lockout_seconds: int,
        *,
        user_soft_limit: int = 20,
        user_delay_seconds: float = 1.0,
    ):
        self._limiter = FixedWindowRateLimiter(storage)
        self._pair_limit = RateLimitItemPerSecond(max_failures, lockout_seconds, namespace="champipy-login-pair")
        self._user_limit = RateLimitItemPerSecond(user_soft_limit, lockout_seconds, namespace="champipy-login-user")
        self.max_failures = max_failures
        self.user_delay_seconds = user_delay_seconds
        self._lockouts = 0
        self._delays = 0
        self._count_lock = threading.Lock()

    @property
    def lockouts(self) -> int:
        """(user, address) pairs this process locked since it started (for /metrics)."""
        return self._lockouts

    @property
    def delays(self) -> int:
        """Sign-ins this process delayed for the per-user soft limit (for /metrics)."""
        return self._delays

    def is_locked(self, username: str, address: str) -> bool:
        return not self._limiter.test(self._pair_limit, username, address)

    def wait_if_user_is_busy(self, username: str) -> None:
        """The soft limit: sleep before a verification slot is taken, so a delay holds none."""
        if not self._limiter.test(self._user_limit, username):
            with self._count_lock:
                self._delays += 1
            time.sleep(self.user_delay_seconds)

    def reserve(self, username: str, address: str) -> Reservation:
        """Count an attempt, or raise TooManyAttempts while the pair is locked."""
        if not self._limiter.hit(self._pair_limit, username, address):
            raise self._locked(username, address)
        remaining = self._limiter.get_window_stats(self._pair_limit, username, address).remaining
        self._limiter.hit(self._user_limit, username)
        return Reservation(username, address, last_before_lock=remaining == 0)

    def failed(self, reservation: Reservation) -> None:
        if reservation.last_before_lock:
            with self._count_lock:
                self._lockouts += 1
            log.warning(
                "sign-in locked for user %r from %s after %d failures",
                reservation.username,
                reservation.address or "unknown address",
                self.max_failures,
            )

    def succeeded(self, reservation: Reservation) -> None:
        self._limiter.clear(self._pair_limit, reservation.username, reservation.address)
        self._limiter.clear(self._user_limit, reservation.username)

    def _locked(self, username: str, address: str) -> TooManyAttempts:
        reset_at = self._limiter.get_window_stats(self._pair_limit, username, address).reset_time
        retry = max(1, math.ceil(reset_at - time.time()))
        return TooManyAttempts(f"Too many failed sign-ins; try again in {retry} s.", retry_after=retry)


def throttle_storage(redis_url: str) -> Storage:
    """Redis when the deployment has one (all replicas share the counters), else memory."""
    storage = storage_from_string(redis_url if redis_url else "memory://")
    assert isinstance(storage, Storage)  # the synchronous kind, for these URL schemes
    return storage
