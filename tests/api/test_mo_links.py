"""Every Mushroom Observer URL an expert copies works with GET /predictions and the JSON body,
against a local fake MO that answers api2's real shapes: pages through the API, files of any
size fetched at 640 px, MO's errors as clear 4xx/502/504, and the SSRF rules on MO's answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from champipy.api.app import create_app
from champipy.images import sha256_hex
from champipy.store import open_store
from data.mo_server import FakeMushroomObserver
from support.accounts import make_account
from support.live_server import client, live_server

OBSERVATION, PRIMARY, SECOND = 548_203, 1_536_252, 1_536_253


def _eval_photo(eval_dir: Path, species_index: int) -> tuple[str, bytes]:
    folder = sorted(p for p in eval_dir.iterdir() if p.is_dir())[species_index]
    return folder.name, sorted(folder.iterdir())[0].read_bytes()


@pytest.fixture
def mo_served(tmp_path, trained_registry):
    with FakeMushroomObserver() as mo:
        probe = trained_registry.settings_for(tmp_path / "probe")
        species, photo = _eval_photo(Path(probe.eval_dir), 0)
        _, other = _eval_photo(Path(probe.eval_dir), 1)
        mo.add_image(PRIMARY, photo, OBSERVATION)
        mo.add_image(SECOND, other, OBSERVATION)
        mo.add_observation(OBSERVATION, [PRIMARY, SECOND], consensus=species)
        settings = trained_registry.settings_for(
            tmp_path / "data",
            fetch_allow_hosts=mo.host,
            mo_api_url=mo.base,
            mo_request_interval=0.0,
            fetch_read_timeout=1.0,
        )
        store = open_store(settings.resolved_database_url)
        user = make_account(store)
        with live_server(create_app(settings)) as base_url:
            yield {"url": base_url, "user": user, "mo": mo, "photo": photo, "species": species}
        store.close()


@pytest.mark.parametrize(
    "path",
    [
        f"/{OBSERVATION}",
        f"/obs/{OBSERVATION}",
        f"/observations/{OBSERVATION}",
        f"/images/{PRIMARY}",
        f"/images/orig/{PRIMARY}.jpg",
        f"/images/320/{PRIMARY}.jpg",
        f"/images/640/{PRIMARY}.jpg",
    ],
)
def test_each_mo_url_form_gives_the_primary_photo_fetched_at_640(mo_served, path):
    mo = mo_served["mo"]
    url = mo.base + path
    with client(mo_served["url"], auth=mo_served["user"].auth) as c:
        answer = c.get("/predictions", params={"file": url, "nb_preds": 3})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["image_sha256"] == sha256_hex(mo_served["photo"]) and body["source_url"] == url
    assert mo.file_paths() == [f"/images/640/{PRIMARY}.jpg"], "one file, at the size the model needs"
    asked = mo.api_paths()
    if path.startswith("/images/") and path.count("/") == 3:
        assert asked == [], "a file URL is rewritten without asking MO"
    else:
        assert asked == ["/api2/images" if path == f"/images/{PRIMARY}" else "/api2/observations"]


def test_the_json_body_takes_an_mo_page_too(mo_served):
    with client(mo_served["url"], auth=mo_served["user"].auth) as c:
        answer = c.post("/predictions", json={"url": f"{mo_served['mo'].base}/obs/{OBSERVATION}", "top_k": 1})
    assert answer.status_code == 200, answer.text
    assert answer.json()["image_sha256"] == sha256_hex(mo_served["photo"])


def test_an_unknown_observation_is_a_404_and_mo_failures_are_502_or_504(mo_served):
    mo = mo_served["mo"]
    with client(mo_served["url"], auth=mo_served["user"].auth) as c:
        unknown = c.get("/predictions", params={"file": f"{mo.base}/obs/999999"})
        no_file = c.get("/predictions", params={"file": f"{mo.base}/images/640/424242.jpg"})
        mo.failing_paths["/api2/observations"] = (
            500,
            {"version": 2.0, "errors": [{"code": "InternalError", "details": "database down", "fatal": "true"}]},
        )
        failing = c.get("/predictions", params={"file": f"{mo.base}/obs/{OBSERVATION}"})
        del mo.failing_paths["/api2/observations"]
        mo.slow_paths["/api2/images"] = 3.0
        slow = c.get("/predictions", params={"file": f"{mo.base}/images/{PRIMARY}"})
    assert unknown.status_code == 404 and "999999" in unknown.json()["detail"]
    assert no_file.status_code == 404
    assert failing.status_code == 502 and failing.json()["error"] == "remote_failed"
    assert slow.status_code == 504 and slow.json()["error"] == "remote_timeout"


def test_an_observation_whose_photo_points_to_a_private_address_is_refused(mo_served):
    # A loopback port that is not allow-listed: refused by the same guard as any private
    # address (tests/fetch covers the others inside a loopback-only network namespace).
    target = "http://127.0.0.1:9/images/640/1.jpg"
    mo = mo_served["mo"]
    record = mo.add_observation(777, [PRIMARY], consensus=None)
    record["primary_image"] = dict(record["primary_image"], files=[target], original_url=target)
    with client(mo_served["url"], auth=mo_served["user"].auth) as c:
        answer = c.get("/predictions", params={"file": f"{mo.base}/obs/777"})
    assert answer.status_code == 403 and answer.json()["error"] == "address_not_allowed", answer.text
    assert mo.file_paths() == []
