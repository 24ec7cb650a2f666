"""Mushroom Observer URLs read without asking MO."""

from __future__ import annotations

import pytest

from champipy.mo_links import MoKind, mo_hosts, parse_mo_link, pick_file_url

HOSTS = mo_hosts("https://mushroomobserver.org")


@pytest.mark.parametrize(
    ("url", "kind", "wanted"),
    [
        ("https://mushroomobserver.org/548203", MoKind.OBSERVATION, None),
        ("https://mushroomobserver.org/obs/548203", MoKind.OBSERVATION, None),
        ("https://www.mushroomobserver.org/observations/548203/", MoKind.OBSERVATION, None),
        ("https://mushroomobserver.org/images/1536252", MoKind.IMAGE_PAGE, None),
        (
            "https://mushroomobserver.org/images/orig/1536252.jpg",
            MoKind.IMAGE_FILE,
            "https://mushroomobserver.org/images/640/1536252.jpg",
        ),
        (
            "https://images.mushroomobserver.org/320/1536252.jpg",
            MoKind.IMAGE_FILE,
            "https://images.mushroomobserver.org/640/1536252.jpg",
        ),
        (
            "https://mushroomobserver.org/images/640/1536252.jpg",
            MoKind.IMAGE_FILE,
            "https://mushroomobserver.org/images/640/1536252.jpg",
        ),
    ],
)
def test_every_form_is_read(url, kind, wanted):
    link = parse_mo_link(url, HOSTS)
    assert link is not None and link.kind is kind
    assert link.id in (548203, 1536252)
    if wanted:
        assert link.wanted_file_url() == wanted


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/obs/548203",  # another host: fetched as a plain file URL
        "https://mushroomobserver.org/names/123",
        "https://mushroomobserver.org/obs/abc",
        "ftp://mushroomobserver.org/123",
        "548203",  # a bare id only where an observation is expected
    ],
)
def test_anything_else_is_not_an_mo_link(url):
    assert parse_mo_link(url, HOSTS) is None


def test_a_bare_id_is_an_observation_where_one_is_expected_and_the_configured_host_counts():
    assert parse_mo_link(" 548203 ", HOSTS, bare_id_is_observation=True).kind is MoKind.OBSERVATION
    local = mo_hosts("http://127.0.0.1:8123")
    assert parse_mo_link("http://127.0.0.1:8123/obs/5", local).id == 5


def test_the_file_picked_is_640_then_the_nearest_never_the_original_first():
    sizes = ["thumb", "320", "640", "960", "1280", "orig"]
    record = {"files": [f"https://mo/images/{s}/1.jpg" for s in sizes], "original_url": "https://mo/images/orig/1.jpg"}
    assert pick_file_url(record) == "https://mo/images/640/1.jpg"
    record["files"] = ["https://mo/images/thumb/1.jpg", "https://mo/images/orig/1.jpg"]
    assert pick_file_url(record) == "https://mo/images/thumb/1.jpg"
    assert pick_file_url({"files": [], "original_url": "https://mo/images/orig/1.jpg"}).endswith("orig/1.jpg")
    assert pick_file_url({}) is None
