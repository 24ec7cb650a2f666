"""The one place where errors become HTTP answers: ``{"error": code, "detail": message}``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..errors import ChampipyError, Forbidden, RetryLater, StoreUnavailable, TooManyAttempts, Unauthorized
from .schemas import ErrorOut

log = logging.getLogger(__name__)

AUTH_CHALLENGE = {"WWW-Authenticate": 'Basic realm="champipy", charset="UTF-8"'}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
}


def error_response(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def internal_error_response() -> JSONResponse:
    """What a client sees of a bug: no trace, only that it was logged."""
    return error_response(500, "internal_error", "Something went wrong on our side; it has been logged.")


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """One line from pydantic's / FastAPI's error list: ``field: message; ...``."""
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "Invalid request."


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ChampipyError)
    async def _typed(request: Request, exc: ChampipyError) -> JSONResponse:
        headers = None
        if isinstance(exc, Unauthorized):
            headers = AUTH_CHALLENGE
        elif isinstance(exc, RetryLater):
            headers = {"Retry-After": str(exc.retry_after)}
        return error_response(exc.status, exc.code, exc.detail, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_input", describe_validation_errors(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, detail, getattr(exc, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # Not our failure: one info line (nginx's 499), no traceback; nobody reads the answer.
        log.info("client closed the connection during %s %s (499)", request.method, request.url.path)
        return error_response(499, "client_closed_request", "The client closed the connection.")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return internal_error_response()


def error_responses(*errors: type[ChampipyError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for the typed errors a route can answer, so /docs shows them."""
    codes: dict[int, list[str]] = {}
    for error in errors:
        codes.setdefault(error.status, []).append(error.code)
    return {
        status: {"model": ErrorOut, "description": "Error: " + ", ".join(sorted(set(names)))}
        for status, names in sorted(codes.items())
    }


def signed_in(*errors: type[ChampipyError]) -> dict[int | str, dict[str, Any]]:
    """A signed-in route's errors: these plus the sign-in ones (a route's entry replaces its router's)."""
    return error_responses(Unauthorized, TooManyAttempts, StoreUnavailable, *errors)


def admin_only(*errors: type[ChampipyError]) -> dict[int | str, dict[str, Any]]:
    return signed_in(Forbidden, *errors)
