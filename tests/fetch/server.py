"""A real HTTP(S) server on 127.0.0.1 with one route per behaviour the fetcher must handle."""

from __future__ import annotations

import socketserver
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

STALL_SECONDS = 3.0  # longer than any read timeout the tests use; cut short at stop()


@dataclass(frozen=True)
class SeenRequest:
    path: str
    headers: dict[str, str]
    sni: str | None


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer would look up the host's FQDN, which may ask a DNS server.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up early is what half these routes are for


class LocalServer:
    def __init__(self, jpeg: bytes, ssl_context: ssl.SSLContext | None = None):
        self.jpeg = jpeg
        self.requests: list[SeenRequest] = []
        self.stopping = threading.Event()
        self._sni: str | None = None
        self._httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self  # type: ignore[attr-defined]
        self.scheme = "http"
        if ssl_context is not None:
            ssl_context.sni_callback = self._remember_sni
            self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True)
            self.scheme = "https"
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def _remember_sni(self, sock: ssl.SSLSocket, name: str | None, context: ssl.SSLContext) -> None:
        self._sni = name

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [seen.path for seen in self.requests]

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    @property
    def owner(self) -> LocalServer:
        return self.server.owner  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        owner = self.owner
        owner.requests.append(SeenRequest(self.path, dict(self.headers.items()), owner._sni))
        path, _, rest = urlsplit(self.path).path.partition("/")[2].partition("/")
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        route = getattr(self, "route_" + path.replace("-", "_").replace(".", "_"), None)
        try:
            if route is None:
                self.reply(404, b"no such route", "text/plain")
            else:
                route(rest, query)
        except (TimeoutError, BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def reply(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str | None, status: int = 302, headers: dict[str, str] | None = None) -> None:
        extra = dict(headers or {})
        if location is not None:
            extra["Location"] = location
        self.reply(status, b"", "text/plain", extra)

    def stall(self) -> None:
        self.close_connection = True
        self.owner.stopping.wait(STALL_SECONDS)

    # Routes: /<name>/<rest>?<query>

    def route_img_jpg(self, rest: str, query: dict[str, str]) -> None:
        self.reply(200, self.owner.jpeg, "image/jpeg")

    def route_jpeg_as_text(self, rest: str, query: dict[str, str]) -> None:
        self.reply(200, self.owner.jpeg, "text/plain")

    def route_text(self, rest: str, query: dict[str, str]) -> None:
        self.reply(200, b"<html>not an image</html>", "text/html")

    def route_fake_jpg(self, rest: str, query: dict[str, str]) -> None:
        self.reply(200, b"<html>this is no JPEG</html>", "image/jpeg")

    def route_status(self, rest: str, query: dict[str, str]) -> None:
        self.reply(int(rest), b"status body", "text/plain")

    def route_slow_headers(self, rest: str, query: dict[str, str]) -> None:
        self.stall()

    def route_stall_body(self, rest: str, query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 10)
        self.wfile.flush()
        self.stall()

    def route_drip(self, rest: str, query: dict[str, str]) -> None:
        self.start_chunked()
        end = time.monotonic() + STALL_SECONDS
        while time.monotonic() < end and not self.owner.stopping.wait(0.05):
            self.write_chunk(b"x")
        self.end_chunked()

    def route_chunked(self, rest: str, query: dict[str, str]) -> None:
        remaining = int(rest)
        self.start_chunked()
        while remaining > 0:
            piece = min(remaining, 16 * 1024)
            self.write_chunk(b"x" * piece)
            remaining -= piece
        self.end_chunked()

    def route_huge_length(self, rest: str, query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(10**9))
        self.end_headers()
        self.wfile.flush()
        self.stall()

    def route_redirect(self, rest: str, query: dict[str, str]) -> None:
        self.redirect(query.get("to"), int(query.get("code", "302")))

    def route_chain(self, rest: str, query: dict[str, str]) -> None:
        hops = int(rest)
        if hops == 0:
            self.route_img_jpg(rest, query)
        else:
            self.redirect(f"/chain/{hops - 1}", int(query.get("code", "302")))

    def route_set_cookie(self, rest: str, query: dict[str, str]) -> None:
        self.redirect("/img.jpg", 302, {"Set-Cookie": "session=secret; Path=/"})

    def start_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
