"""``data fetch``: Mushroom Observer's api2 answered by a local server, images stored with licences."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from champipy.errors import RemoteFailed
from champipy.fetch import SafeFetcher
from champipy.images import sha256_hex
from champipy.mushroom_observer import MushroomObserverClient, fetch_species
from champipy.settings import Settings
from champipy.store import open_store
from champipy.store.base import LabelSource

from .helpers import jpeg
from .mo_server import FakeMushroomObserver

SPECIES = "Amanita muscaria"
CC_BY_SA = "Creative Commons Wikipedia Compatible v3.0"
CC_NC = "Creative Commons Non-commercial v3.0"


def record(image_id: int, license: str, holder: str, ok_for_export: bool = True, *, files: bool = True) -> dict:
    entry = {
        "id": image_id,
        "type": "image",
        "copyright_holder": holder,
        "ok_for_export": ok_for_export,
        "license": license,
        "content_type": "image/jpeg",
        "original_url": f"{{base}}/images/orig/{image_id}.jpg",
    }
    if files:
        entry["files"] = [f"{{base}}/images/{size}/{image_id}.jpg" for size in ("thumb", "320", "640", "960", "orig")]
    return entry


@pytest.fixture
def mo():
    with FakeMushroomObserver() as server:
        server.pages[SPECIES] = [
            [
                record(1, CC_BY_SA, "Alice Agaric"),
                record(2, CC_NC, "Bob Bolete"),
                record(3, "Keep Private", "Carol", ok_for_export=False),
                record(4, CC_BY_SA, "Dan", ok_for_export=False),
            ],
            [
                record(5, CC_BY_SA, "Erin"),  # same bytes as image 1
                record(6, CC_BY_SA, "Frank"),  # serves text
                record(7, "Public Domain", "Grace", files=False),
            ],
            [record(8, CC_BY_SA, "Heidi")],
        ]
        server.files.update(
            {
                "/images/640/1.jpg": jpeg(1),
                "/images/640/2.jpg": jpeg(2),
                "/images/640/5.jpg": jpeg(1),
                "/images/640/6.jpg": b"<html>sorry</html>",
                "/images/orig/7.jpg": jpeg(7),
                "/images/640/8.jpg": jpeg(8),
            }
        )
        yield server


@pytest.fixture
def settings(tmp_path, mo) -> Settings:
    settings = Settings(
        data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path}/t.db", fetch_allow_hosts=mo.host
    )
    settings.ensure_data_dir()
    return settings


@pytest.fixture
def store(settings):
    store = open_store(settings.database_url)
    yield store
    store.close()


def client_for(settings: Settings, mo: FakeMushroomObserver, interval: float = 0.0) -> MushroomObserverClient:
    return MushroomObserverClient(SafeFetcher(settings), api_url=mo.base, request_interval=interval)


def test_reusable_photos_are_stored_with_licence_and_copyright_holder(settings, store, mo):
    with client_for(settings, mo) as client:
        summary = fetch_species(store, settings, client, [SPECIES], limit=100)

    counts = summary.species[SPECIES]
    assert (counts.added, counts.duplicates, counts.not_reusable, counts.failed) == (4, 1, 2, 1)
    assert summary.failures[0]["url"].endswith("/images/640/6.jpg")

    first = store.get_image(sha256_hex(jpeg(1)))
    assert first.label == SPECIES
    assert first.label_source == LabelSource.IMPORTED
    assert (first.license, first.copyright) == (CC_BY_SA, "Alice Agaric")
    assert first.source_url == f"{mo.base}/images/640/1.jpg"
    assert store.get_image(sha256_hex(jpeg(2))).license == CC_NC
    assert store.get_image(sha256_hex(jpeg(7))).license == "Public Domain"
    assert store.count_images() == 4

    assert [q["page"] for q in mo.api_queries()] == ["1", "2", "3"]
    assert all(q["name"] == SPECIES and q["detail"] == "high" and q["format"] == "json" for q in mo.api_queries())
    # Photos that may not be reused are never downloaded.
    assert not any(path.split("/")[-1] in ("3.jpg", "4.jpg") for path in mo.file_paths())


def test_the_limit_counts_photos_already_stored_and_stops_paging(settings, store, mo):
    with client_for(settings, mo) as client:
        summary = fetch_species(store, settings, client, [SPECIES], limit=3)

    counts = summary.species[SPECIES]
    assert (counts.added, counts.duplicates) == (2, 1)
    assert [q["page"] for q in mo.api_queries()] == ["1", "2"]
    assert "/images/640/6.jpg" not in mo.file_paths()


def test_requests_are_spaced_by_the_polite_interval(settings, store, mo):
    with client_for(settings, mo, interval=0.15) as client:
        fetch_species(store, settings, client, [SPECIES], limit=2)

    times = [moment for moment, _, _ in mo.requests]
    assert len(times) >= 3
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.14


def test_an_api_error_is_a_typed_remote_failure(settings, store, mo):
    with client_for(settings, mo) as client, pytest.raises(RemoteFailed, match="name not found"):
        fetch_species(store, settings, client, ["Nonexistentia imaginaria"], limit=5)


def test_the_cli_fetches_through_the_configured_api(tmp_path, settings, store, mo):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAMPIPY_")}
    env.update(
        CHAMPIPY_DATA_DIR=str(settings.data_dir),
        CHAMPIPY_DATABASE_URL=settings.database_url,
        CHAMPIPY_FETCH_ALLOW_HOSTS=mo.host,
        CHAMPIPY_MO_API_URL=mo.base,
        CHAMPIPY_MO_REQUEST_INTERVAL="0",
    )
    done = subprocess.run(
        [sys.executable, "-m", "champipy", "data", "fetch", "--species", SPECIES, "--limit", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert SPECIES in done.stdout
    assert store.count_images() == 2
    assert store.get_image(sha256_hex(jpeg(2))).copyright == "Bob Bolete"
