"""Fixtures for the web pages: live servers, test accounts and a headless Chromium.

Chromium is Debian's (/usr/bin/chromium, or CHAMPIPY_CHROMIUM): Playwright's own download
cannot run here. A missing browser fails the tests that need it; nothing is skipped.

Two servers:
- ``web_server``: the real app on a fresh SQLite database, without model serving. Enough for
  signing in, CSRF, headers, the 403 page and the layout.
- ``start_model_server``: the real app serving the small model trained once per session
  (the shared ``trained_registry`` fixture), on a database and a registry copy of its own,
  for predictions, feedback and the dashboard.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from champipy.api.app import create_app
from champipy.container import build_container
from champipy.settings import Settings
from champipy.store import open_store
from support.accounts import make_account
from support.live_server import live_server

from .helpers import DESKTOP, Server

CHROMIUM = Path(os.environ.get("CHAMPIPY_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


# --- servers ---------------------------------------------------------------------------------
@pytest.fixture
def web_settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", bootstrap_model=False, model_poll_seconds=0.5)


@pytest.fixture
def web_server(web_settings) -> Iterator[Server]:
    """The real app and database, without the model parts (the pages do not need them)."""
    container = build_container(web_settings)
    try:
        user = make_account(container.store)
        admin = make_account(container.store, admin=True, prefix="admin")
        with live_server(create_app(web_settings, container=container)) as url:
            yield Server(url, web_settings, container.store, user, admin)
    finally:
        container.close()


@pytest.fixture
def production_model_settings(request) -> Callable[..., Settings]:
    """``production_model_settings(data_dir, **overrides)``: settings serving the session's
    trained model (the shared ``trained_registry``) from a private copy of its registry."""
    return request.getfixturevalue("trained_registry").settings_for


@pytest.fixture
def start_model_server(production_model_settings, tmp_path) -> Iterator[Callable[..., Server]]:
    """``start_model_server(**settings overrides)``: the whole app serving the trained model,
    on a database and a registry copy of this test's own (promotions stay in the test)."""
    with ExitStack() as stack:

        def start(**overrides) -> Server:
            settings = production_model_settings(tmp_path / "data", **overrides)
            store = open_store(settings.resolved_database_url)
            stack.callback(store.close)
            user, admin = make_account(store), make_account(store, admin=True, prefix="admin")
            url = stack.enter_context(live_server(create_app(settings)))
            return Server(url, settings, store, user, admin)

        yield start


# --- the browser -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: `apt-get install -y chromium` "
            "(or point CHAMPIPY_CHROMIUM at a Chromium binary).",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Watched:
    """A page and the errors it logged: console messages of type error and uncaught exceptions."""

    page: object
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Accept console errors matching ``pattern`` (a page answered with a 4xx on purpose)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]

    def assert_clean(self) -> None:
        unexpected = self.unexpected()
        assert not unexpected, "the page logged errors:\n" + "\n".join(unexpected)


@pytest.fixture
def open_page(browser) -> Iterator[Callable[..., Watched]]:
    """``open_page(base_url, viewport=DESKTOP)``: a fresh browser context (own cookies)."""
    opened: list[tuple[object, Watched]] = []

    def open_(base_url: str, viewport: dict = DESKTOP) -> Watched:
        phone = viewport["width"] < 600
        context = browser.new_context(
            base_url=base_url,
            viewport=viewport,
            is_mobile=phone,
            has_touch=phone,
            device_scale_factor=2 if phone else 1,
        )
        context.set_default_timeout(20_000)
        page = context.new_page()
        watched = Watched(page)

        def on_console(message) -> None:
            if message.type == "error":
                watched.errors.append(f"console: {message.text} ({message.location.get('url', '')})")

        page.on("console", on_console)
        page.on("pageerror", lambda error: watched.errors.append(f"page error: {error}"))
        opened.append((context, watched))
        return watched

    yield open_
    problems = []
    for context, watched in opened:
        problems += watched.unexpected()
        context.close()
    assert not problems, "pages logged errors:\n" + "\n".join(problems)
