"""Logging set-up: one line of JSON per record.

Every line written while a request is handled carries that request's id: the request-log
middleware (``api/request_log.py``) sets ``request_id`` for the request's context, and the
threads that serve it (FastAPI's pool) inherit that context.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

# The id of the HTTP request being handled, if any (set by api/request_log.py).
request_id: ContextVar[str | None] = ContextVar("champipy_request_id", default=None)

# Their INFO lines carry full URLs, query strings included (fetched image URLs may hold tokens).
QUIET_LOGGERS = ("httpx", "httpcore")

_FIELDS = ("request_id", "method", "path", "route", "status", "duration_ms", "user", "client")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        for key in _FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
