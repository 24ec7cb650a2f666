"""Hostile image shapes and formats over HTTP: a clear 4xx, and memory that does not follow
the attacker's numbers.

Peak memory is read from the kernel (VmHWM of this process, which runs the server's threads),
reset before each request through /proc/self/clear_refs, so each figure is one request's peak.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from champipy.api.app import create_app
from champipy.store import open_store
from support.accounts import make_account
from support.live_server import client, live_server

MIB = 1024 * 1024


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS to the current RSS


def png(size: tuple[int, int], mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), (120, 80, 40)).save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture
def served(tmp_path, trained_registry):
    settings = trained_registry.settings_for(tmp_path / "data")
    store = open_store(settings.resolved_database_url)
    user = make_account(store)
    with live_server(create_app(settings)) as base_url, client(base_url, auth=user.auth) as c:
        yield c
    store.close()


def upload(c, data: bytes, filename: str) -> tuple[int, dict]:
    answer = c.post("/predictions", files={"file": (filename, data, "application/octet-stream")})
    return answer.status_code, answer.json()


@pytest.mark.parametrize("fmt", ["TIFF", "JPEG2000", "PPM", "TGA", "ICO", "BMP"])
def test_formats_the_page_does_not_promise_are_415_with_the_list(served, fmt):
    status, body = upload(served, encoded(fmt), f"photo.{fmt.lower()}")
    assert status == 415 and body["error"] == "not_an_image"
    assert "JPEG, PNG, WebP or GIF" in body["detail"]


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_promised_formats_are_predicted(served, fmt):
    status, body = upload(served, encoded(fmt), f"photo.{fmt.lower()}")
    assert status == 200 and len(body["results"]) >= 1


def test_thin_and_tiny_images_are_422_and_the_limits_are_named(served):
    for size in [(1, 100_000), (100_000, 1), (1, 40_000_000), (8, 8)]:
        status, body = upload(served, png(size), "bomb.png")
        assert status == 422 and body["error"] == "unsupported_image_shape", (size, body)
        assert f"{size[0]}x{size[1]}" in body["detail"]
    status, body = upload(served, png((16, 320), "RGB"), "thin-but-allowed.png")
    assert status == 200, body


def test_peak_memory_of_one_request_stays_flat_as_a_thin_image_grows(served):
    """Before the fix 1x1000 cost +270 MiB and 1x100000 killed the process."""
    upload(served, encoded("PNG"), "warm-up.png")  # first-request allocations are not the image's
    growth = {}
    for rows in (1_000, 10_000, 100_000, 1_000_000, 4_000_000):
        data = png((1, rows))
        reset_peak_rss()
        before = peak_rss_bytes()
        status, _ = upload(served, data, "bomb.png")
        growth[rows] = peak_rss_bytes() - before
        assert status == 422
    assert max(growth.values()) < 16 * MIB, growth
    # Flat, not merely small: 4,000 times the rows may not cost more than a few MiB more.
    assert growth[4_000_000] - growth[1_000] < 8 * MIB, growth


def test_peak_memory_of_an_accepted_photo_follows_its_pixels_not_its_shape(served):
    """A long photo within the ratio limit costs about what a square one of as many pixels does:
    the resize never builds the whole resized image."""
    square, long = png((800, 800), "RGB"), png((160, 3200), "RGB")  # 20:1, 512,000 pixels each
    upload(served, encoded("PNG"), "warm-up.png")
    peaks = {}
    for name, data in (("square", square), ("long", long)):
        reset_peak_rss()
        before = peak_rss_bytes()
        status, body = upload(served, data, f"{name}.png")
        peaks[name] = peak_rss_bytes() - before
        assert status == 200, body
    assert peaks["long"] < peaks["square"] + 8 * MIB, peaks
