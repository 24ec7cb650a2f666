"""The Huey queue behind the jobs: a SQLite file by default, Redis when configured."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from huey import Huey, RedisHuey, SqliteHuey, crontab

from ..errors import InvalidInput
from ..settings import Settings
from .kinds import DEFAULT_QUEUE_NAME


def build_huey(settings: Settings, name: str = DEFAULT_QUEUE_NAME) -> Huey:
    """SqliteHuey in ``data_dir/jobs.db``, or RedisHuey when ``redis_url`` is set.

    Results are off: a job's outcome lives on its Job record in the Store, where the API
    and the dashboard read it.
    """
    if settings.redis_url:
        return RedisHuey(name, url=settings.redis_url, results=False)
    settings.ensure_data_dir()
    return SqliteHuey(name, filename=str((settings.data_dir / "jobs.db").resolve()), results=False)


def parse_cron(expression: str) -> Callable[[datetime], bool]:
    """Turn a 5-field cron string (minute hour day month weekday) into a Huey schedule.

    Huey evaluates it in UTC.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise InvalidInput(f"The schedule {expression!r} must have 5 fields: minute hour day month weekday.")
    minute, hour, day, month, weekday = fields
    try:
        schedule: Callable[[datetime], bool] = crontab(minute, hour, day, month, weekday, strict=True)
        return schedule
    except ValueError as exc:
        raise InvalidInput(f"The schedule {expression!r} is not a valid cron expression: {exc}") from exc
