"""An app that has stopped is freed with its container (models, sessions, thread pools)."""

from __future__ import annotations

import gc
import weakref

from champipy.api.app import create_app
from support.live_server import client, live_server


def test_a_stopped_app_and_its_container_are_freed(api_settings, accounts):
    app = create_app(api_settings)
    with live_server(app) as base_url, client(base_url) as http:
        # /docs was a closure over the app, which FastAPI's endpoint cache kept alive forever.
        assert http.get("/docs").status_code == 200
        assert http.get("/status").status_code == 200
        container = weakref.ref(app.state.container)
        app_ref = weakref.ref(app)
    del app
    gc.collect()
    assert app_ref() is None and container() is None
