"""General routes over HTTP, and the 401/403/200 matrix for anonymous, user and admin."""

from __future__ import annotations

import base64

import pytest

from champipy import __version__
from support.live_server import client


def test_status_is_public_and_says_no_model_yet(http):
    answer = http.get("/status")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["version"] == __version__
    assert body["model"]["loaded"] is False
    not_ready = http.get("/status", params={"ready": "true"})  # what a readiness probe asks
    assert not_ready.status_code == 503 and not_ready.json()["model"]["loaded"] is False


def test_dbconnex_is_public_and_true_on_a_working_database(http):
    answer = http.get("/dbconnex")
    assert answer.status_code == 200
    assert answer.json() == {"connected": True, "backend": "sqlite"}


@pytest.mark.parametrize("who, expected", [("anonymous", 401), ("user", 200), ("admin", 200)])
def test_user_route_access(api, accounts, who, expected):
    auth = None if who == "anonymous" else accounts[who].auth
    with client(api, auth=auth) as c:
        answer = c.get("/user")
    assert answer.status_code == expected
    if expected == 401:
        assert answer.headers["www-authenticate"].startswith("Basic")
        assert answer.json()["error"] == "unauthorized"
    else:
        body = answer.json()
        assert body["username"] == accounts[who].username
        assert body["is_admin"] is (who == "admin")
        assert ("admin" in body["roles"]) is (who == "admin")


def test_wrong_password_is_401_and_never_echoed(api, accounts):
    secret = "definitely-wrong-password"
    with client(api, auth=(accounts["user"].username, secret)) as c:
        answer = c.get("/user")
    assert answer.status_code == 401
    assert secret not in answer.text


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Bearer",
        "Bearer not-a-real-token",
        "Digest username=x",
        "garbage",
    ],
)
def test_malformed_authorization_headers_get_a_clear_401(http, header):
    answer = http.get("/user", headers={"Authorization": header})
    assert answer.status_code == 401
    body = answer.json()
    assert body["error"] == "unauthorized" and body["detail"]
    assert "Traceback" not in answer.text


def test_unknown_user_is_401(http):
    answer = http.get("/user", auth=("nobody-here", "whatever123"))
    assert answer.status_code == 401


def test_repeated_failures_lock_the_account_for_a_while(api, accounts):
    user = accounts["user"]
    with client(api) as c:
        codes = [c.get("/user", auth=(user.username, f"wrong-{i}")).status_code for i in range(6)]
        locked = c.get("/user", auth=user.auth)
    assert codes[:5] == [401] * 5
    assert codes[5] == 429
    assert locked.status_code == 429, "even the right password waits out the lock"
    assert int(locked.headers["retry-after"]) > 0


def test_docs_and_openapi_are_served(http):
    assert http.get("/docs").status_code == 200
    schema = http.get("/openapi.json").json()
    assert "/predictions" in schema["paths"] and "/status" in schema["paths"]


def test_unknown_route_has_the_error_shape(http):
    answer = http.get("/no-such-route")
    assert answer.status_code == 404
    assert set(answer.json()) == {"error", "detail"}


def test_huge_body_is_refused_with_413(api, accounts, api_settings):
    too_big = b"x" * (api_settings.max_upload_bytes + 200_000)
    with client(api, auth=accounts["user"].auth) as c:
        answer = c.post("/predictions", content=too_big, headers={"content-type": "application/octet-stream"})
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"
