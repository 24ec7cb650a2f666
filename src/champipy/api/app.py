"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from ..container import Container, build_server_container
from ..services.observations import MAX_PHOTOS
from ..settings import Settings, get_settings
from ..web import install_web
from .body_limit import BodyLimitMiddleware
from .docs import install_docs
from .errors import install_error_handlers
from .metrics import install_metrics
from .request_log import RequestLogMiddleware
from .routes import admin, general, observations, original, predictions, species, tokens
from .server_timing import ServerTimingMiddleware

# Multipart overhead on top of the largest accepted image.
BODY_MARGIN_BYTES = 64 * 1024


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = container is None
        app.state.container = container or build_server_container(settings)
        app.state.metrics.bind(app.state.container)
        app.state.container.start()
        try:
            yield
        finally:
            if owned:
                app.state.container.close()

    app = FastAPI(
        title="ChampiPy",
        version=__version__,
        description="Identify mushroom species from a photo.",
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, without a CDN
        redoc_url=None,
    )
    app.state.settings = settings  # what this app was built with, before its container exists
    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_upload_bytes + BODY_MARGIN_BYTES,
        path_limits={"/observations": MAX_PHOTOS * settings.max_upload_bytes + BODY_MARGIN_BYTES},
    )
    for module in (general, tokens, predictions, observations, species, admin, original):
        app.include_router(module.router)
    install_docs(app)  # /docs from packaged assets, under a strict CSP
    install_web(app, settings)  # the user page, the admin dashboard, /static
    install_metrics(app)  # GET /metrics, per-route request counts and latencies
    app.add_middleware(ServerTimingMiddleware)  # where each request's time went, in a header
    app.add_middleware(RequestLogMiddleware)  # outermost: request id, access log, 500s
    return app
