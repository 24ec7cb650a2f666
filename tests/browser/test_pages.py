"""The pages in a real Chromium, without a model: sign in and out, the 403 page, layout."""

from __future__ import annotations

import pytest

from .helpers import DESKTOP, PHONE, assert_fits_width, screenshot, sign_in

pytestmark = pytest.mark.browser


def test_sign_in_shows_the_user_page_and_sign_out_ends_the_session(web_server, open_page):
    w = open_page(web_server.url)
    page = w.page
    page.goto("/")
    assert page.title().startswith("Sign in")
    page.fill("input[name=username]", web_server.user.username)
    page.fill("input[name=password]", "not-the-password")
    w.allow(r"status of 401")  # the form answers 401 to a wrong password, on purpose
    page.click("#signin-form button[type=submit]")
    assert page.get_by_test_id("signin-error").inner_text() == "Wrong user name or password."
    assert page.input_value("input[name=username]") == web_server.user.username

    sign_in(page, web_server.user)
    assert page.get_by_test_id("whoami").inner_text() == web_server.user.username
    assert page.get_by_role("heading", name="Identify a mushroom").is_visible()
    assert page.get_by_role("link", name="Dashboard").count() == 0  # not an admin
    page.wait_for_selector("#recent-empty:not([hidden])")  # the API answered with the session cookie

    cookie = next(c for c in page.context.cookies() if c["name"] == "champipy_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]  # plain http here
    assert page.evaluate("document.cookie") == ""  # invisible to scripts

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("#signin-form")
    assert not [c for c in page.context.cookies() if c["name"] == "champipy_session"]
    w.assert_clean()


def test_a_non_admin_gets_a_403_page_and_anonymous_users_are_sent_to_sign_in(web_server, open_page):
    w = open_page(web_server.url)
    page = w.page
    page.goto("/admin")
    assert page.url.endswith("/login?next=%2Fadmin")
    page.fill("input[name=username]", web_server.user.username)
    page.fill("input[name=password]", web_server.user.password)
    w.allow(r"status of 403")
    with page.expect_response(lambda r: r.url.endswith("/admin")) as answer:
        page.click("#signin-form button[type=submit]")
    assert answer.value.status == 403
    assert page.get_by_test_id("error-title").inner_text() == "Admins only"
    assert page.get_by_test_id("whoami").inner_text() == web_server.user.username
    w.assert_clean()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_pages_fit_the_screen(web_server, open_page, viewport):
    w = open_page(web_server.url, viewport)
    page = w.page
    page.goto("/")
    assert_fits_width(page)
    screenshot(page, f"signin-{'phone' if viewport is PHONE else 'desktop'}")
    sign_in(page, web_server.user)
    page.wait_for_selector("#recent-empty:not([hidden])")
    assert_fits_width(page)
    assert page.locator("#drop-zone").is_visible() and page.locator("#photo-url").is_visible()
    w.assert_clean()


def test_the_api_docs_render_from_our_own_assets_under_a_strict_policy(web_server, open_page):
    w = open_page(web_server.url)
    outside: list[str] = []
    w.page.on(
        "request", lambda request: None if request.url.startswith(web_server.url) else outside.append(request.url)
    )
    answer = w.page.goto("/docs")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    w.page.wait_for_selector(".opblock-summary-path")  # swagger-ui ran and read /openapi.json
    paths = w.page.locator(".opblock-summary-path").all_inner_texts()
    assert "/predictions" in paths and "/status" in paths
    assert outside == [], f"the docs page reached beyond this server: {outside}"
    w.assert_clean()  # a CSP violation would be a console error
