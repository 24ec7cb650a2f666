"""``champipy serve``: the API, the web pages and (by default) an in-process job worker."""

from __future__ import annotations

import typer

from . import app


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to listen on (default CHAMPIPY_HOST, 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default CHAMPIPY_PORT, 8000)."),
) -> None:
    """Start the service with uvicorn."""
    import uvicorn

    from ..api.app import create_app
    from ..logs import configure_logging
    from ..settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        access_log=False,
    )
