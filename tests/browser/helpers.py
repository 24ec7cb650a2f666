"""Helpers for the page tests: signing in, screenshots, layout checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from champipy.settings import Settings
from champipy.store.base import Store
from support.accounts import Account

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class Server:
    url: str
    settings: Settings
    store: Store
    user: Account
    admin: Account


def sign_in(page, account: Account, path: str = "/") -> None:
    page.goto(path)
    page.fill("input[name=username]", account.username)
    page.fill("input[name=password]", account.password)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("[data-testid=whoami]")
    wait_until_ready(page)


def wait_until_ready(page) -> None:
    """The page's scripts have run (they mark their root element with data-ready)."""
    page.wait_for_load_state("load")
    if page.locator("#user-app, #admin-app").count():
        page.wait_for_selector("[data-ready]", state="attached")


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_fits_width(page) -> None:
    """Nothing sticks out sideways: the page scrolls vertically only."""
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"
