"""``post_alert``: JSON to the configured webhook, failures logged and reported as False."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from champipy.alerts import post_alert
from champipy.settings import Settings


class Webhook:
    """A local receiver answering ``status`` after ``delay`` seconds."""

    def __init__(self, status: int = 200, delay: float = 0.0):
        self.status, self.delay = status, delay
        self.received: list[tuple[str, str, dict]] = []
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
                owner.release.wait(owner.delay)
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/hooks/T0K3N"

    def __enter__(self):
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()


PAYLOAD = {"kind": "accuracy_below_target", "accuracy": 0.64, "target": 0.7}


def test_the_payload_is_posted_as_json():
    with Webhook() as hook:
        assert post_alert(Settings(alert_webhook_url=hook.url), PAYLOAD) is True
    assert hook.received == [("/hooks/T0K3N", "application/json", PAYLOAD)]


def test_an_error_status_is_false_and_logged_without_the_secret_path(caplog):
    with Webhook(status=500) as hook:
        assert post_alert(Settings(alert_webhook_url=hook.url), PAYLOAD) is False
    assert "answered 500" in caplog.text
    assert "T0K3N" not in caplog.text


def test_a_slow_webhook_times_out_instead_of_blocking():
    with Webhook(delay=5.0) as hook:
        assert post_alert(Settings(alert_webhook_url=hook.url), PAYLOAD, timeout=0.3) is False


def test_an_unreachable_webhook_is_false():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert post_alert(Settings(alert_webhook_url=f"http://127.0.0.1:{port}/hook"), PAYLOAD) is False


@pytest.mark.parametrize("url", ["", "not a url"])
def test_no_or_bad_webhook_is_false(url):
    assert post_alert(Settings(alert_webhook_url=url), PAYLOAD) is False
