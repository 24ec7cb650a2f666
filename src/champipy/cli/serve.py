"""``champipy serve``: the API, the web pages and (by default) an in-process job worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from . import app

if TYPE_CHECKING:
    from ..container import Container


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to listen on (default CHAMPIPY_HOST, 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default CHAMPIPY_PORT, 8000)."),
) -> None:
    """Start the service with uvicorn."""
    import uvicorn

    from ..api.app import create_app
    from ..container import build_server_container
    from ..logs import configure_logging
    from ..settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level)
    # One container for the whole process: the first-start training and the app share its
    # store and registry instead of opening their own.
    container = build_server_container(settings)
    try:
        _train_first_model_if_needed(container)
        uvicorn.run(
            create_app(settings, container),
            host=host or settings.host,
            port=port or settings.port,
            log_config=None,
            access_log=False,
            # X-Forwarded-For is believed only from the proxies named here: by default from
            # none, so a client cannot pick the address its sign-in lockout is counted on.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=settings.trusted_proxies or None,
            limit_concurrency=settings.server_limit_concurrency or None,
            timeout_keep_alive=settings.server_keep_alive_seconds,
        )
    finally:
        container.close()


def _train_first_model_if_needed(container: Container) -> None:
    """A bare machine's first start: train and promote a model before serving (about a minute
    or two on a laptop), so the first prediction works."""
    from ..services.bootstrap import first_model_once, train_first_model
    from .models import training_progress

    settings, lifecycle = container.settings, container.lifecycle
    assert container.registry is not None and lifecycle is not None  # a server container

    def train() -> None:
        with training_progress(settings) as on_progress:
            train_first_model(settings, lifecycle, on_progress)

    # Replicas started together on an empty registry: one trains, the others wait, then serve.
    first_model_once(settings, container.registry, train)
