"""Request ids and the access log: one JSON line per request, an id on every line.

- The id comes from the client's ``X-Request-ID`` header when it is sane (1-128 characters
  among letters, digits and ``._:-``, so it cannot forge log lines or headers), otherwise a
  new random one. It is echoed in the ``X-Request-ID`` response header, 500s included, and
  every log line written while the request runs carries it (``logs.request_id``).
- The access line (logger ``champipy.access``) holds method, path, route template, status,
  duration_ms, the client address and the user once authentication named one
  (``note_user``). It never holds the query string, headers or bodies, so no password,
  Authorization header, token or URL parameter reaches the log.
- An exception that escapes the app is logged with its traceback and answered here, with
  the app's own handler for ``Exception`` (``errors.py``), so the 500 keeps both the one
  error shape and the request id.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import logs
from .errors import internal_error_response

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode()
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_LOGGED_PATH = 512

access_log = logging.getLogger("champipy.access")
log = logging.getLogger(__name__)


@dataclass
class _RequestContext:
    """Mutable on purpose: threads that serve the request share it through a context copy."""

    user: str | None = None


_current: ContextVar[_RequestContext | None] = ContextVar("champipy_request_context", default=None)


def note_user(username: str) -> None:
    """Name the authenticated user in this request's access line (a no-op outside requests)."""
    context = _current.get()
    if context is not None:
        context.user = username


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    for key, value in headers:
        if key.lower() == _HEADER_KEY:
            candidate = value.decode("latin-1").strip()
            if _SANE_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class RequestLogMiddleware:
    """Outermost of our middlewares: it times the whole request, errors included."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope.get("headers") or [])
        # Each request runs in its own task, so these do not leak into the next request.
        logs.request_id.set(request_id)
        context = _RequestContext()
        _current.set(context)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER_KEY]
                headers.append((_HEADER_KEY, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if response_started:  # too late for an error answer: the client sees a cut response
                log.exception("error after the response started on %s %s", scope["method"], scope["path"])
                raise
            status = 500
            response = await _error_response(scope, exc)
            await response(scope, receive, send_with_id)
        finally:
            _log_access(scope, status, started, context.user)


async def _error_response(scope: Scope, exc: Exception) -> Response:
    app = scope.get("app")
    handler = getattr(app, "exception_handlers", {}).get(Exception)
    if handler is not None:
        try:
            response: Response = await handler(Request(scope), exc)  # logs the traceback itself
            return response
        except Exception:
            log.exception("the error handler failed")
    else:
        log.exception("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)
    return internal_error_response()


def _log_access(scope: Scope, status: int, started: float, user: str | None) -> None:
    route = scope.get("route")
    client = scope.get("client")
    access_log.info(
        "%s %s %s",
        scope["method"],
        scope["path"][:MAX_LOGGED_PATH],
        status,
        extra={
            "method": scope["method"],
            "path": scope["path"][:MAX_LOGGED_PATH],
            "route": getattr(route, "path", None),
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "user": user,
            "client": client[0] if client else None,
        },
    )
