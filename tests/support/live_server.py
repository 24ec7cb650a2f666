"""Run the real app under uvicorn in a background thread, on a free loopback port.

An app on the embedded MLflow store gets the session's migrated empty store first (see
``support.mlflow_store``) when its data directory has none yet: the app opens it as it starts.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import httpx
import uvicorn

from .mlflow_store import seed_mlflow_store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(app, startup_timeout: float = 60.0):
    settings = getattr(app.state, "settings", None)  # set by create_app
    if settings is not None:
        seed_mlflow_store(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server stopped during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start in time")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def client(base_url: str, auth=None, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=base_url, auth=auth, timeout=60, trust_env=False, **kwargs)
