"""``app.api.main.api`` for the original ChampiPy's own tests: ChampiPy's ``/v0`` routes.

The original's tests import ``api`` from ``app.api.main`` and call it in process through
httpx's ASGI transport, which runs no lifespan; ChampiPy builds its container in the lifespan.
So the lifespan runs here once, in Starlette's TestClient portal thread, for the whole test
session, and ``api`` prefixes each path with ``/v0``, as an old script pointed at
``https://host/v0`` would. Settings come from the CHAMPIPY_* environment.
"""

from __future__ import annotations

import atexit

from starlette.testclient import TestClient

from champipy.api.app import create_app
from champipy.settings import Settings

PREFIX = "/v0"

_app = create_app(Settings())
_lifespan = TestClient(_app)
_lifespan.__enter__()  # startup: store, first model load, model poller
atexit.register(_lifespan.__exit__, None, None, None)


async def api(scope, receive, send):
    if scope["type"] in ("http", "websocket"):
        scope = dict(scope, path=PREFIX + scope["path"], raw_path=PREFIX.encode() + scope.get("raw_path", b""))
    await _app(scope, receive, send)
