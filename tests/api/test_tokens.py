"""API tokens: created for the signed-in user, stored hashed, usable as Bearer, revocable."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from champipy.api.app import create_app
from champipy.store import open_store
from support.live_server import client, live_server


def test_token_lifecycle(api, accounts, api_settings):
    user = accounts["user"]
    with client(api, auth=user.auth) as c:
        created = c.post("/tokens", json={"name": "my script"})
        assert created.status_code == 201
        token = created.json()["token"]
        listed = c.get("/tokens").json()
    assert [t["name"] for t in listed] == ["my script"]
    assert "token" not in listed[0]

    store = open_store(api_settings.resolved_database_url)
    try:
        stored = store.list_tokens(user.username)[0]
        assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in repr(stored)
    finally:
        store.close()

    with client(api, headers={"Authorization": f"Bearer {token}"}) as bearer:
        assert bearer.get("/user").json()["username"] == user.username
        assert bearer.delete(f"/tokens/{created.json()['id']}").status_code == 204
        assert bearer.get("/user").status_code == 401


def test_tokens_need_a_signed_in_user(http):
    assert http.post("/tokens", json={"name": "x"}).status_code == 401
    assert http.get("/tokens").status_code == 401


def test_revoking_someone_elses_token_is_404(api, accounts):
    with client(api, auth=accounts["admin"].auth) as admin:
        token_id = admin.post("/tokens", json={"name": "admin's"}).json()["id"]
    with client(api, auth=accounts["user"].auth) as user:
        assert user.delete(f"/tokens/{token_id}").status_code == 404


def test_wrong_types_in_token_body_are_422(api, accounts):
    with client(api, auth=accounts["user"].auth) as c:
        answer = c.post("/tokens", json={"name": ["not", "a", "string"]})
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_input"


def test_a_token_of_a_user_disabled_elsewhere_is_refused(api_settings, accounts):
    # The CLI disables users from another process; with the token memory off the next request sees it.
    settings = api_settings.model_copy(update={"token_cache_seconds": 0})
    user = accounts["user"]
    store = open_store(settings.resolved_database_url)
    try:
        with live_server(create_app(settings)) as api, client(api, auth=user.auth) as c:
            token = c.post("/tokens", json={"name": "cli"}).json()["token"]
            with client(api, headers={"Authorization": f"Bearer {token}"}) as bearer:
                assert bearer.get("/user").status_code == 200
                store.update_user(user.username, disabled=True)
                assert bearer.get("/user").status_code == 401
    finally:
        store.close()


def test_a_token_cannot_create_a_token(api, accounts):
    """A child token would survive its parent's revocation: only a password or a session mint one."""
    with client(api, auth=accounts["user"].auth) as c:
        token = c.post("/tokens", json={"name": "parent"}).json()["token"]
    with client(api, headers={"Authorization": f"Bearer {token}"}) as bearer:
        child = bearer.post("/tokens", json={"name": "child"})
        names = [t["name"] for t in bearer.get("/tokens").json()]
    assert child.status_code == 403 and child.json()["error"] == "forbidden"
    assert names == ["parent"]


def test_metrics_can_require_a_token(tmp_path, accounts, api_settings):
    settings = api_settings.model_copy(update={"metrics_token": "scrape-secret"})
    with live_server(create_app(settings)) as base_url, client(base_url) as c:
        anonymous = c.get("/metrics")
        wrong = c.get("/metrics", headers={"Authorization": "Bearer nope"})
        scraper = c.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert scraper.status_code == 200 and "champipy_http_requests_total" in scraper.text


def test_a_token_can_expire(api, accounts, api_settings):
    with client(api, auth=accounts["user"].auth) as c:
        created = c.post("/tokens", json={"name": "ci", "expires_in_days": 30})
        never = c.post("/tokens", json={"name": "laptop"})
        invalid = c.post("/tokens", json={"name": "bad", "expires_in_days": 0})
    assert created.status_code == 201 and never.status_code == 201 and invalid.status_code == 422
    expires_at = datetime.fromisoformat(created.json()["expires_at"])
    assert timedelta(days=29, hours=23) < expires_at - datetime.now(UTC) <= timedelta(days=30)
    assert never.json()["expires_at"] is None

    from champipy.passwords import hash_api_token, new_api_token

    store = open_store(api_settings.resolved_database_url)
    try:  # one that expired a second ago, as the store would hold it after 30 days
        expired = new_api_token()
        store.add_token(
            accounts["user"].username,
            "old",
            hash_api_token(expired),
            expires_at=datetime.now(UTC) - timedelta(seconds=1),
        )
    finally:
        store.close()
    with client(api, headers={"Authorization": f"Bearer {expired}"}) as c:
        answer = c.get("/user")
    with client(api, headers={"Authorization": f"Bearer {created.json()['token']}"}) as c:
        fresh = c.get("/user")
    assert answer.status_code == 401 and "expired" in answer.json()["detail"]
    assert fresh.status_code == 200
