"""A local stand-in for Mushroom Observer: the api2 ``images`` and ``observations`` queries
and the image files, in the shapes of MO's api2 JSON views (app/views/controllers/api2/
*.json.jbuilder): the wrapper {version, run_date, query, number_of_records, number_of_pages,
page_number, results, errors, run_time}, image records with ``files`` (one URL per size,
smallest first, original last) and observation records with ``consensus``, ``primary_image``
and ``images``."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SIZES = ("thumb", "320", "640", "960", "1280", "orig")


class FakeMushroomObserver:
    """``pages[name]`` is a list of pages, each a list of image records; ``files[path]`` the
    bytes served at that path. Records may use ``{base}`` in URLs for this server's address."""

    def __init__(self) -> None:
        self.pages: dict[str, list[list[dict]]] = {}
        self.files: dict[str, bytes] = {}
        self.image_records: dict[int, dict] = {}
        self.observation_records: dict[int, dict] = {}
        self.slow_paths: dict[str, float] = {}  # path -> seconds to wait before answering
        self.failing_paths: dict[str, tuple[int, dict]] = {}  # path -> (status, JSON body)
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

    def api_paths(self) -> list[str]:
        return [path for _, path, _ in self.requests if path.startswith("/api2/")]

    def file_paths(self) -> list[str]:
        return [path for _, path, _ in self.requests if path.startswith("/images/")]

    def __enter__(self) -> FakeMushroomObserver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # --- records in MO's shapes ----------------------------------------------------------------
    def add_image(self, image_id: int, data: bytes, observation_id: int | None = None) -> dict:
        """An image record and its file at every size MO serves (the same bytes here)."""
        for size in SIZES:
            self.files[f"/images/{size}/{image_id}.jpg"] = data
        record = {
            "id": image_id,
            "type": "image",
            "date": "2024-09-14",
            "copyright_holder": "Jane Doe",
            "license": "Creative Commons Wikipedia Compatible v3.0",
            "ok_for_export": True,
            "content_type": "image/jpeg",
            "width": 1280,
            "height": 960,
            "original_url": f"{{base}}/images/orig/{image_id}.jpg",
            "files": [f"{{base}}/images/{size}/{image_id}.jpg" for size in SIZES],
            "observation_ids": [observation_id] if observation_id else [],
        }
        self.image_records[image_id] = record
        return record

    def add_observation(self, observation_id: int, image_ids: list[int], consensus: str | None) -> dict:
        images = [self.image_records[i] for i in image_ids]
        record: dict = {
            "id": observation_id,
            "type": "observation",
            "date": "2024-09-14",
            "latitude": 48.85,
            "longitude": 2.35,
            "namings": [],
            "votes": [],
            "owner": {"id": 7, "type": "user", "login_name": "beginner", "legal_name": "A. Beginner"},
            "primary_image": images[0] if images else None,
            "images": images[1:],
        }
        if consensus:
            record["consensus"] = {
                "id": 99,
                "type": "name",
                "name": consensus,
                "author": "(L.) Lam.",
                "rank": "Species",
            }
        self.observation_records[observation_id] = record
        return record

    def answer_records(self, records: dict[int, dict], query: dict[str, str], kind: str) -> tuple[int, dict]:
        wanted = query.get("id", "")
        found = [records[int(wanted)]] if wanted.isdigit() and int(wanted) in records else []
        body = {
            "version": 2.0,
            "run_date": "2026-12-02T10:00:00Z",
            "query": f"{kind} where id = {wanted}",
            "number_of_records": len(found),
            "number_of_pages": 1,
            "page_number": 1,
            "results": json.loads(json.dumps(found).replace("{base}", self.base)),
            "run_time": 0.01,
        }
        return 200, body

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
        if url.path in owner.slow_paths:
            time.sleep(owner.slow_paths[url.path])
        if url.path in owner.failing_paths:
            status, body = owner.failing_paths[url.path]
            self._reply(status, json.dumps(body).encode(), "application/json")
        elif url.path == "/api2/images" and "id" in query:
            status, body = owner.answer_records(owner.image_records, query, "Image")
            self._reply(status, json.dumps(body).encode(), "application/json")
        elif url.path == "/api2/observations":
            status, body = owner.answer_records(owner.observation_records, query, "Observation")
            self._reply(status, json.dumps(body).encode(), "application/json")
        elif url.path == "/api2/images":
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
