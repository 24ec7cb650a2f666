"""Refuse request bodies over a size cap before they are read into memory."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response


class BodyTooLarge(HTTPException):
    """An HTTPException so that FastAPI's body parsing re-raises it as a 413."""

    def __init__(self, detail: str):
        super().__init__(status_code=413, detail=detail)


class BodyLimitMiddleware:
    """``max_bytes`` for every path but those in ``path_limits`` (exact paths: an observation
    takes several photos in one request)."""

    def __init__(self, app: ASGIApp, max_bytes: int, path_limits: dict[str, int] | None = None):
        self.app = app
        self.default_max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope.get("path", ""), self.default_max_bytes)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                await _refuse(scope, receive, send, 400, "bad_request", "Invalid Content-Length header.")
                return
            if too_big:
                await _refuse(scope, receive, send, 413, "too_large", self._message(limit))
                return

        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(self._message(limit))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await _refuse(scope, receive, send, 413, "too_large", self._message(limit))

    @staticmethod
    def _message(limit: int) -> str:
        return f"The request body is larger than {limit // (1024 * 1024)} MiB."


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str, detail: str) -> None:
    # The unread body stays on the connection: close it rather than parse the rest.
    await error_response(status, code, detail, {"connection": "close"})(scope, receive, send)
