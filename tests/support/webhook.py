"""A local webhook endpoint for alert tests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler

from support.image_server import _Server


class Webhook:
    """A local endpoint that records the JSON bodies posted to it."""

    def __init__(self):
        self.received: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                owner.received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/hook"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
