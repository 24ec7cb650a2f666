"""Background jobs on Huey: see ``wiring.create_runner`` for the kinds and the schedule."""

from ..errors import QueueUnavailable
from .consumer import JobConsumer
from .queue import DEFAULT_QUEUE_NAME, build_huey, parse_cron
from .runner import WORKER_STOPPED, Handler, JobRunner, Report
from .wiring import consumes_in_process, create_runner

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
