"""Where a request's time goes: named stages timed while it runs.

The API opens a record per request (api/server_timing.py) and answers it in a ``Server-Timing``
header, the W3C standard that browsers' developer tools and our benchmarks read. Code below the
API only marks its stages with ``stage(name)``; outside a request (a job, a CLI command, a thread
that did not inherit the request's context) that is a no-op, so the services never depend on the
API being there.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

# Shared by reference with the worker threads a request runs code in (they get a context copy).
_stages: ContextVar[dict[str, float] | None] = ContextVar("champipy_stages", default=None)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as stage ``name`` of the current request (a stage run twice adds up)."""
    stages = _stages.get()
    if stages is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        stages[name] = stages.get(name, 0.0) + (time.perf_counter() - started) * 1000


def begin() -> tuple[dict[str, float], Token[dict[str, float] | None]]:
    """Start recording this request's stages; returns the record and the token for ``end``."""
    stages: dict[str, float] = {}
    return stages, _stages.set(stages)


def end(token: Token[dict[str, float] | None]) -> None:
    _stages.reset(token)
