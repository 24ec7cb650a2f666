"""The user page and the admin dashboard, served by the API's own application."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ..settings import Settings
from .headers import WebHeadersMiddleware
from .session import SessionManager


def install_web(app: FastAPI, settings: Settings) -> None:
    """Add the pages, their static files, the session manager and the security headers."""
    from .routes import STATIC_DIR, router

    app.state.sessions = SessionManager(settings)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(WebHeadersMiddleware)
