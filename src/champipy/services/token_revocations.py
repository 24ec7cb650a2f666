"""A revocation counter every API replica reads, so a revoked token is refused everywhere at once.

Each replica remembers a bearer token's user for a few seconds (services/users.py). Revoking
a token bumps this counter; a remembered user counts only while the counter still reads what
it read when the user was remembered. The counter lives in the same ``limits`` storage as the
sign-in throttle: process memory by default, Redis (one GET per cached request, ~0.1 ms) when
several replicas share ``CHAMPIPY_REDIS_URL``.
"""

from __future__ import annotations

import logging

from limits.storage import Storage

log = logging.getLogger(__name__)

_KEY = "champipy-token-revocations"
# The key outlives any remembered token user by far (they last seconds), so its expiry
# (a reset to 0) cannot make a stale entry look current again.
_KEY_LIFETIME_SECONDS = 30 * 24 * 3600


class RevocationClock:
    def __init__(self, storage: Storage):
        self.storage = storage

    def now(self) -> int | None:
        """The counter, or None when it cannot be read (then nothing remembered counts)."""
        try:
            return int(self.storage.get(_KEY))
        except Exception as exc:
            log.warning("cannot read the token revocation counter: %s", exc)
            return None

    def bump(self) -> None:
        try:
            self.storage.incr(_KEY, _KEY_LIFETIME_SECONDS)
        except Exception as exc:  # the store already says revoked: other replicas see it within the cache time
            log.warning("cannot bump the token revocation counter: %s", exc)
