"""Shares of small counts with their confidence interval: an eval set of 222 photos or a day
of traffic is small, so a bare rate says too little.

NumPy-free at import, so serving can use it; SciPy is imported when an interval is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

CONFIDENCE_LEVEL = 0.95


@dataclass(frozen=True)
class Rate:
    """k of n, with its Wilson interval (n = 0: rate 0 in [0, 1], nothing known)."""

    k: int
    n: int
    rate: float
    low: float
    high: float


def wilson(k: int, n: int) -> Rate:
    from scipy.stats import binomtest

    if n == 0:
        return Rate(0, 0, 0.0, 0.0, 1.0)
    interval = binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE_LEVEL, method="wilson")
    return Rate(k, n, k / n, float(interval.low), float(interval.high))
