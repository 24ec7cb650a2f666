"""Sessions, CSRF and headers of the pages, over HTTP (no browser needed, so not marked)."""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from champipy.api.app import create_app
from champipy.container import build_container
from champipy.services.users import set_admin, set_disabled, set_password
from champipy.settings import Settings
from champipy.web.session import SECRET_FILE, SESSION_COOKIE, load_secret_key
from support.live_server import client, live_server

CSP_PARTS = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob: https:",
    "frame-ancestors 'none'",
    "form-action 'self'",
    "base-uri 'none'",
]


def login_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def page_csrf(html: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)">', html).group(1)


@contextmanager
def signed_in(base_url: str, account, **kwargs) -> Iterator[tuple[httpx.Client, str]]:
    """A client holding a session cookie, and the CSRF token of its pages."""
    with client(base_url, **kwargs) as http:
        form = http.get("/")
        answer = http.post(
            "/login",
            data={
                "username": account.username,
                "password": account.password,
                "csrf_token": login_token(form.text),
                "next": "/",
            },
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        yield http, page_csrf(http.get("/").text)


def assert_strict_page_headers(answer: httpx.Response) -> None:
    csp = answer.headers["content-security-policy"]
    for part in CSP_PARTS:
        assert part in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"
    assert answer.headers["cache-control"] == "no-store"


def assert_no_inline_code(html: str) -> None:
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert "<style" not in html and " style=" not in html, "inline style"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert not re.search(r'(src|href)="(https?:)?//(?!mushroomobserver\.org)', html), "asset from another site"


# --- pages and headers -----------------------------------------------------------------------
def test_every_page_has_a_strict_csp_and_no_inline_code(web_server):
    with client(web_server.url) as anonymous:
        answer = anonymous.get("/")
        assert answer.status_code == 200 and "Sign in" in answer.text
        assert_strict_page_headers(answer)
        assert_no_inline_code(answer.text)
    for account, path, status in [
        (web_server.user, "/", 200),
        (web_server.user, "/admin", 403),
        (web_server.admin, "/admin", 200),
        (web_server.admin, "/", 200),
    ]:
        with signed_in(web_server.url, account) as (http, _):
            answer = http.get(path)
            assert answer.status_code == status
            assert_strict_page_headers(answer)
            assert_no_inline_code(answer.text)


def test_static_files_are_served_by_the_app_with_nosniff(web_server):
    with client(web_server.url) as http:
        page = http.get("/").text
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
        assert {a.split("?")[0] for a in assets} >= {"/static/style.css", "/static/favicon.svg"}
        for asset in assets:
            answer = http.get(asset)
            assert answer.status_code == 200
            assert answer.headers["x-content-type-options"] == "nosniff"
        assert (
            http.get("/static/common.js")
            .headers["content-type"]
            .startswith(("text/javascript", "application/javascript"))
        )


def test_the_pages_stay_out_of_the_openapi_document(web_server):
    with client(web_server.url) as http:
        paths = http.get("/openapi.json").json()["paths"]
    assert not {"/", "/admin", "/login", "/logout"} & set(paths)


def test_anonymous_admin_page_redirects_to_sign_in(web_server):
    with client(web_server.url) as http:
        answer = http.get("/admin")
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=%2Fadmin"


# --- the sign-in form ------------------------------------------------------------------------
def test_sign_in_sets_a_signed_http_only_lax_cookie(web_server):
    with client(web_server.url) as http:
        form = http.get("/login")
        answer = http.post(
            "/login",
            data={
                "username": web_server.user.username,
                "password": web_server.user.password,
                "csrf_token": login_token(form.text),
                "next": "/admin",
            },
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/admin"
        cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
        assert "secure" not in flags  # plain http
        assert web_server.user.password not in cookie


def test_the_cookies_are_secure_over_https(web_server):
    """Behind a TLS proxy on the same host (uvicorn trusts X-Forwarded-Proto from 127.0.0.1)."""
    with client(web_server.url, headers={"X-Forwarded-Proto": "https"}) as http:
        form = http.get("/")
        login_cookie = form.headers["set-cookie"]
        # httpx keeps Secure cookies for https only: hand the nonce back as the browser would.
        nonce = login_cookie.split(";", 1)[0]
        answer = http.post(
            "/login",
            headers={"Cookie": nonce},
            data={
                "username": web_server.user.username,
                "password": web_server.user.password,
                "csrf_token": login_token(form.text),
            },
        )
    assert answer.status_code == 303
    cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
    for header in (login_cookie, cookie):
        assert "secure" in {part.strip().lower() for part in header.split(";")}


@pytest.mark.parametrize("case", ["no token", "forged token", "token without its cookie", "foreign origin"])
def test_the_sign_in_form_is_protected_against_csrf(web_server, case):
    with client(web_server.url) as http:
        token = login_token(http.get("/").text)
        data = {"username": web_server.user.username, "password": web_server.user.password, "csrf_token": token}
        headers = {}
        if case == "no token":
            data.pop("csrf_token")
        elif case == "forged token":
            data["csrf_token"] = "0" * 64
        elif case == "token without its cookie":
            http.cookies.clear()
        else:
            headers["Origin"] = "https://evil.example"
        answer = http.post("/login", data=data, headers=headers)
        assert answer.status_code == 403
        assert "expired" in answer.text
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


def test_wrong_password_and_lockout_on_the_form(web_server):
    with client(web_server.url) as http:
        for _ in range(web_server.settings.login_max_failures + 1):
            token = login_token(http.get("/").text)
            answer = http.post(
                "/login", data={"username": web_server.user.username, "password": "wrong-password", "csrf_token": token}
            )
            if answer.status_code == 429:
                break
            assert answer.status_code == 401 and "Wrong user name or password." in answer.text
            assert "wrong-password" not in answer.text
        assert answer.status_code == 429 and "retry-after" in answer.headers
        assert "www-authenticate" not in answer.headers  # a page, not a Basic challenge


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/predictions"])
def test_sign_in_only_sends_users_to_the_pages(web_server, target):
    with client(web_server.url) as http:
        token = login_token(http.get("/").text)
        answer = http.post(
            "/login",
            data={
                "username": web_server.user.username,
                "password": web_server.user.password,
                "csrf_token": token,
                "next": target,
            },
        )
    assert answer.status_code == 303 and answer.headers["location"] == "/"


# --- the API with the session cookie ---------------------------------------------------------
def test_cookie_authenticated_api_calls_need_the_csrf_header(web_server):
    with signed_in(web_server.url, web_server.user) as (http, csrf):
        for method, path, body in [("POST", "/tokens", {"name": "from the page"}), ("GET", "/user", None)]:
            missing = http.request(method, path, json=body)
            assert missing.status_code == 403
            assert missing.json() == {"error": "forbidden", "detail": missing.json()["detail"]}
            assert "CSRF" in missing.json()["detail"]
            wrong = http.request(method, path, json=body, headers={"X-CSRF-Token": "x" * 64})
            assert wrong.status_code == 403
            good = http.request(method, path, json=body, headers={"X-CSRF-Token": csrf})
            assert good.status_code in (200, 201), good.text
        assert http.get("/user", headers={"X-CSRF-Token": csrf}).json()["username"] == web_server.user.username


def test_the_csrf_token_is_bound_to_the_session(web_server):
    with (
        signed_in(web_server.url, web_server.user) as (first, first_csrf),
        signed_in(web_server.url, web_server.user) as (second, second_csrf),
    ):
        assert first_csrf != second_csrf
        assert first.get("/user", headers={"X-CSRF-Token": second_csrf}).status_code == 403
        assert first.get("/user", headers={"X-CSRF-Token": first_csrf}).status_code == 200


def test_basic_and_bearer_are_unaffected_by_the_session_machinery(web_server):
    account = web_server.user
    with client(web_server.url, auth=account.auth) as basic:
        created = basic.post("/tokens", json={"name": "script"})  # no CSRF header: scripts keep working
        assert created.status_code == 201
    with client(web_server.url, headers={"Authorization": f"Bearer {created.json()['token']}"}) as bearer:
        assert bearer.get("/tokens").status_code == 200
        assert bearer.post("/tokens", json={"name": "script 2"}).status_code == 403  # a token mints no token
    with client(web_server.url) as anonymous:
        answer = anonymous.get("/user")
        assert answer.status_code == 401
        assert answer.json()["detail"] == (
            "Sign in: send HTTP Basic credentials or an API token (Authorization: Bearer ...)."
        )
        assert answer.headers["www-authenticate"].startswith("Basic")
        # The page's scripts get no Basic challenge, so the browser shows no password dialog.
        from_page = anonymous.get("/user", headers={"X-Requested-With": "champipy-web"})
        assert from_page.status_code == 401 and "www-authenticate" not in from_page.headers


def test_an_authorization_header_wins_over_the_cookie(web_server):
    with signed_in(web_server.url, web_server.user) as (http, _):
        answer = http.get("/user", auth=web_server.admin.auth)  # no CSRF header needed for Basic
        assert answer.status_code == 200 and answer.json()["username"] == web_server.admin.username
        answer = http.get("/user", headers={"Authorization": "Bearer nope"})
        assert answer.status_code == 401 and answer.json()["detail"] == "Unknown or revoked API token."


def test_a_tampered_or_foreign_cookie_is_ignored(web_server):
    with signed_in(web_server.url, web_server.user) as (http, csrf):
        value = http.cookies[SESSION_COOKIE]
        payload, rest = value.split(".", 1)
        http.cookies.set(SESSION_COOKIE, payload[:-2] + "AA." + rest)
        assert http.get("/user", headers={"X-CSRF-Token": csrf}).status_code == 401
        assert "signin-form" in http.get("/").text


@pytest.mark.parametrize("change", ["password", "disabled"])
def test_a_password_change_or_disabling_ends_sessions(web_server, change):
    with signed_in(web_server.url, web_server.user) as (http, csrf):
        if change == "password":
            set_password(web_server.store, web_server.user.username, "a-brand-new-password")
        else:
            set_disabled(web_server.store, web_server.user.username, True)
        assert http.get("/user", headers={"X-CSRF-Token": csrf}).status_code == 401
        assert "signin-form" in http.get("/").text


def test_roles_are_read_at_each_request(web_server):
    with signed_in(web_server.url, web_server.user) as (http, _):
        assert http.get("/admin").status_code == 403
        set_admin(web_server.store, web_server.user.username, True)
        assert http.get("/admin").status_code == 200


def test_sign_out_needs_the_page_token_and_clears_the_cookie(web_server):
    with signed_in(web_server.url, web_server.user) as (http, csrf):
        refused = http.post("/logout", data={})
        assert refused.status_code == 403
        assert http.get("/user", headers={"X-CSRF-Token": csrf}).status_code == 200
        answer = http.post("/logout", data={"csrf_token": csrf})
        assert answer.status_code == 303
        assert SESSION_COOKIE not in http.cookies
        assert http.get("/user", headers={"X-CSRF-Token": csrf}).status_code == 401


# --- the secret key --------------------------------------------------------------------------
def test_the_generated_key_is_private_and_sessions_survive_a_restart(web_server):
    key_file = web_server.settings.data_dir / SECRET_FILE
    container = build_container(web_server.settings)  # a second server on the same data directory
    try:
        with (
            signed_in(web_server.url, web_server.user) as (http, csrf),
            live_server(create_app(web_server.settings, container=container)) as other_url,
        ):
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            key = key_file.read_bytes()
            cookie = http.cookies[SESSION_COOKIE]
            with client(other_url, cookies={SESSION_COOKIE: cookie}) as other:
                answer = other.get("/user", headers={"X-CSRF-Token": csrf})
                assert answer.status_code == 200 and answer.json()["username"] == web_server.user.username
    finally:
        container.close()
    assert key_file.read_bytes() == key


def test_a_configured_key_is_used_and_no_file_is_written(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", secret_key="k" * 40)
    assert load_secret_key(settings) == b"k" * 40
    assert not (tmp_path / "data" / SECRET_FILE).exists()


def test_a_key_file_readable_by_others_is_made_private(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    first = load_secret_key(settings)
    path = tmp_path / "data" / SECRET_FILE
    os.chmod(path, 0o644)
    assert load_secret_key(settings) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_processes_starting_together_agree_on_one_key(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    barrier = threading.Barrier(8)
    keys: list[bytes] = []

    def load() -> None:
        barrier.wait()
        keys.append(load_secret_key(settings))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    databases = {"champipy.db", "mlflow.db", "jobs.db"}  # created empty and 0600 with the data dir
    assert {p.name for p in (tmp_path / "data").iterdir()} - databases == {SECRET_FILE}  # no temporary file left


def test_sign_out_ends_the_session_on_the_server_even_for_a_copied_cookie(web_server):
    with (
        signed_in(web_server.url, web_server.user) as (http, csrf),
        signed_in(web_server.url, web_server.user) as (other_tab, other_csrf),
    ):
        copied = http.cookies[SESSION_COOKIE]
        assert http.post("/logout", data={"csrf_token": csrf}).status_code == 303
        with client(web_server.url, cookies={SESSION_COOKIE: copied}) as thief:
            stolen = thief.get("/user", headers={"X-CSRF-Token": csrf})
        elsewhere = other_tab.get("/user", headers={"X-CSRF-Token": other_csrf})
    assert stolen.status_code == 401, "a cookie copied before sign-out no longer works"
    assert elsewhere.status_code == 401, "sign-out ends the user's other sessions too"
    with signed_in(web_server.url, web_server.user) as (again, again_csrf):
        assert again.get("/user", headers={"X-CSRF-Token": again_csrf}).status_code == 200


def test_a_utf8_password_signs_in_on_the_form(web_server):
    set_password(web_server.store, web_server.user.username, "pässwörd123")
    with client(web_server.url) as http:
        form = http.get("/")
        answer = http.post(
            "/login",
            data={
                "username": web_server.user.username,
                "password": "pässwörd123",
                "csrf_token": login_token(form.text),
                "next": "/",
            },
        )
    assert answer.status_code == 303
