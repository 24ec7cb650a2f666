"""Background jobs on Huey: see ``wiring.create_runner`` for the kinds and the schedule.

The names below are loaded on first use, so that ``champipy.jobs.kinds`` (imported by every
CLI command) does not load Huey and Redis.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..errors import QueueUnavailable
    from .consumer import JobConsumer
    from .kinds import DEFAULT_QUEUE_NAME
    from .queue import build_huey, parse_cron
    from .runner import WORKER_STOPPED, Handler, JobRunner, Report
    from .wiring import consumes_in_process, create_runner

_WHERE = {
    "DEFAULT_QUEUE_NAME": ".kinds",
    "WORKER_STOPPED": ".runner",
    "Handler": ".runner",
    "JobConsumer": ".consumer",
    "JobRunner": ".runner",
    "QueueUnavailable": "..errors",
    "Report": ".runner",
    "build_huey": ".queue",
    "consumes_in_process": ".wiring",
    "create_runner": ".wiring",
    "parse_cron": ".queue",
}
__all__ = [
    "DEFAULT_QUEUE_NAME",
    "WORKER_STOPPED",
    "Handler",
    "JobConsumer",
    "JobRunner",
    "QueueUnavailable",
    "Report",
    "build_huey",
    "consumes_in_process",
    "create_runner",
    "parse_cron",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name], __name__), name)
