"""Structured logs: a request id on every line, one access line per request, no secrets."""

from __future__ import annotations

import logging
import re

import pytest

from champipy.api.request_log import note_user
from support.live_server import client, live_server

from .helpers import wait_until
from .serving import serve

HEX_ID = re.compile(r"[0-9a-f]{32}")


def _access_line(json_log, request_id: str) -> dict:
    def find():
        lines = [r for r in json_log.access() if r.get("request_id") == request_id]
        return lines or None

    lines = wait_until(find, what=f"the access line of {request_id}")
    assert len(lines) == 1, lines
    return lines[0]


def test_a_sane_request_id_is_echoed_and_logged(plain_http, json_log):
    answer = plain_http.get("/status", headers={"X-Request-ID": "abc-123.def:9_Z"})
    assert answer.headers["x-request-id"] == "abc-123.def:9_Z"
    line = _access_line(json_log, "abc-123.def:9_Z")
    assert line["method"] == "GET" and line["path"] == "/status" and line["route"] == "/status"
    assert line["status"] == 200 and line["level"] == "info"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["client"] == "127.0.0.1"


@pytest.mark.parametrize("given", [None, "", "has space", 'quote"s', "x" * 129, "ünïcode", "a,b", "{json}"])
def test_a_missing_or_odd_request_id_is_replaced(plain_http, json_log, given):
    headers = {} if given is None else {"X-Request-ID": given.encode("utf-8")}
    answer = plain_http.get("/status", headers=headers)
    request_id = answer.headers["x-request-id"]
    assert HEX_ID.fullmatch(request_id), request_id
    _access_line(json_log, request_id)


def test_each_request_gets_its_own_id(plain_http):
    ids = {plain_http.get("/status").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_no_password_token_or_query_string_reaches_the_log(plain_http, plain_account, json_log):
    password_guess = "Wr0ng-Pa55word-Sentinel"
    token_value = "tok_sentinel_9f8e7d6c5b4a"
    query_secret = "query-secret-sentinel"
    plain_http.get("/user", auth=(plain_account.username, password_guess))
    plain_http.get("/user", auth=plain_account.auth)
    plain_http.get("/user", headers={"Authorization": f"Bearer {token_value}"})
    created = plain_http.post("/tokens", json={"name": "ci"}, auth=plain_account.auth)
    assert created.status_code == 201
    real_token = created.json()["token"]
    plain_http.get("/user", headers={"Authorization": f"Bearer {real_token}"})
    last = plain_http.get(
        f"/predictions/recent?limit=5&api_key={query_secret}", headers={"Authorization": f"Bearer {real_token}"}
    )
    assert last.status_code == 200
    _access_line(json_log, last.headers["x-request-id"])
    text = json_log.text
    for secret in (password_guess, plain_account.password, token_value, real_token, query_secret):
        assert secret not in text
    assert "authorization" not in text.lower()
    paths = {line["path"] for line in json_log.access()}
    assert paths == {"/user", "/tokens", "/predictions/recent"}


def test_every_line_of_a_request_carries_its_id(plain_app, json_log):
    app_log = logging.getLogger("champipy.test")

    @plain_app.get("/_test/log-twice")
    def log_twice() -> dict:  # runs in the thread pool, like most routes
        app_log.info("first")
        app_log.warning("second")
        return {}

    with live_server(plain_app) as base_url, client(base_url) as c:
        request_id = c.get("/_test/log-twice", headers={"X-Request-ID": "req-42"}).headers["x-request-id"]
        _access_line(json_log, "req-42")
    assert request_id == "req-42"
    mine = [r for r in json_log.records() if r["logger"] == "champipy.test"]
    assert [r["message"] for r in mine] == ["first", "second"]
    assert all(r["request_id"] == "req-42" for r in mine)


def test_an_unexpected_error_is_a_500_with_the_id_and_a_logged_traceback(plain_app, json_log):
    @plain_app.get("/_test/boom")
    async def boom() -> dict:
        raise RuntimeError("kaboom-sentinel")

    with live_server(plain_app) as base_url, client(base_url) as c:
        answer = c.get("/_test/boom", headers={"X-Request-ID": "req-boom"})
        line = _access_line(json_log, "req-boom")
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "req-boom"
    assert answer.json()["error"] == "internal_error"
    assert "kaboom" not in answer.text
    assert line["status"] == 500 and line["route"] == "/_test/boom"
    errors = [r for r in json_log.records() if r["level"] == "error"]
    assert errors and all(r["request_id"] == "req-boom" for r in errors)
    assert any("kaboom-sentinel" in r.get("exception", "") for r in errors)


def test_the_access_line_names_the_user_once_known(plain_app, json_log):
    @plain_app.get("/_test/as-alice")
    def as_alice() -> dict:
        note_user("alice")
        return {}

    with live_server(plain_app) as base_url, client(base_url) as c:
        request_id = c.get("/_test/as-alice").headers["x-request-id"]
        line = _access_line(json_log, request_id)
        anonymous = c.get("/status").headers["x-request-id"]
        assert "user" not in _access_line(json_log, anonymous)
    assert line["user"] == "alice"


def test_a_client_that_leaves_mid_upload_is_one_info_line_not_a_traceback(trained_registry, tmp_path, json_log):
    import base64
    import socket

    # A serving app: one without a model answers /predictions 503 before reading the body.
    with serve(trained_registry, tmp_path / "data") as served:
        credentials = base64.b64encode(f"{served.user.username}:{served.user.password}".encode()).decode()
        host, port = served.url.removeprefix("http://").split(":")
        for _ in range(3):
            with socket.create_connection((host, int(port))) as raw:
                raw.sendall(
                    b"POST /predictions HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
                    + credentials.encode()
                    + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n\r\n"
                    + b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
                    + b"x" * 1000
                )
        wait_until(
            lambda: len([r for r in json_log.records() if "(499)" in r.get("message", "")]) == 3, what="three 499 lines"
        )
    records = json_log.records()
    assert not [r for r in records if r["level"] in ("error", "critical") or r.get("exception")], records
    assert all(r["status"] == 499 for r in json_log.access() if r["path"] == "/predictions")
