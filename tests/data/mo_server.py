"""A local stand-in for Mushroom Observer: the api2 ``images`` query and the image files."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FakeMushroomObserver:
    """``pages[name]`` is a list of pages, each a list of image records; ``files[path]`` the
    bytes served at that path. Records may use ``{base}`` in URLs for this server's address."""

    def __init__(self) -> None:
        self.pages: dict[str, list[list[dict]]] = {}
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[float, str, dict[str, str]]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self.port = self._httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def api_queries(self) -> list[dict[str, str]]:
        return [query for _, path, query in self.requests if path == "/api2/images"]

    def file_paths(self) -> list[str]:
        return [path for _, path, _ in self.requests if path.startswith("/images/")]

    def __enter__(self) -> FakeMushroomObserver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer_api(self, query: dict[str, str]) -> tuple[int, dict]:
        pages = self.pages.get(query.get("name", ""))
        if pages is None:
            error = {"code": "ObjectNotFoundByString", "details": "name not found", "fatal": "true"}
            return 400, {"version": 2.0, "errors": [error]}
        page = int(query.get("page", "1"))
        results = pages[page - 1] if page <= len(pages) else []
        body = {
            "version": 2.0,
            "query": "Image where ...",
            "number_of_records": sum(len(p) for p in pages),
            "number_of_pages": len(pages),
            "page_number": page,
            "results": json.loads(json.dumps(results).replace("{base}", self.base)),
        }
        return 200, body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        owner: FakeMushroomObserver = self.server.owner  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        owner.requests.append((time.monotonic(), url.path, query))
        if url.path == "/api2/images":
            status, body = owner.answer_api(query)
            self._reply(status, json.dumps(body).encode(), "application/json")
        elif url.path in owner.files:
            self._reply(200, owner.files[url.path], "image/jpeg")
        else:
            self._reply(404, b"not found", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
