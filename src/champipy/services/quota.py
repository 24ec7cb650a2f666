"""A per-user daily quota of predictions (CHAMPIPY_DAILY_PREDICTIONS_PER_USER; 0: none).

Each prediction request counts, answered from the cache or not: each one stores a row. The
window is a fixed day from a user's first request, counted in memory or, when
CHAMPIPY_REDIS_URL is set, in Redis for every API process (the ``limits`` library).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerDay
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter

from ..errors import QuotaExceeded


class DailyQuota:
    def __init__(self, storage: Storage, per_day: int):
        self.per_day = per_day
        self._limiter = FixedWindowRateLimiter(storage)
        self._item = RateLimitItemPerDay(max(per_day, 1), namespace="champipy-quota")

    def spend(self, username: str) -> None:
        if self.per_day and not self._limiter.hit(self._item, username):
            reset_at = self._limiter.get_window_stats(self._item, username).reset_time
            retry = max(1, math.ceil(reset_at - time.time()))
            raise QuotaExceeded(
                f"Your quota of {self.per_day} predictions a day is used up; it renews in "
                f"{retry // 3600} h {retry % 3600 // 60} min.",
                retry_after=retry,
            )
