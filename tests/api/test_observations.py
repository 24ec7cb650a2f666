"""POST /observations over HTTP with a real model: uploads, URLs and Mushroom Observer
observations of 1-5 photos, the combined answer, per-photo failures, the cache across
observations, the consensus check and feedback on every photo."""

from __future__ import annotations

from pathlib import Path

import pytest

from champipy.api.app import create_app
from champipy.store import open_store
from champipy.store.base import LabelSource
from data.mo_server import FakeMushroomObserver
from support.accounts import make_account
from support.live_server import client, live_server

OBSERVATION = 548_203


def _photos(eval_dir: Path, species_index: int, n: int) -> tuple[str, list[bytes]]:
    folder = sorted(p for p in eval_dir.iterdir() if p.is_dir())[species_index]
    return folder.name, [p.read_bytes() for p in sorted(folder.iterdir())[:n]]


@pytest.fixture
def observed(tmp_path, trained_registry):
    with FakeMushroomObserver() as mo:
        probe = trained_registry.settings_for(tmp_path / "probe")
        species, photos = _photos(Path(probe.eval_dir), 1, 3)
        other, _ = _photos(Path(probe.eval_dir), 2, 1)
        for i, photo in enumerate(photos):
            mo.add_image(1000 + i, photo, OBSERVATION)
        mo.add_observation(OBSERVATION, [1000, 1001, 1002], consensus=species)
        mo.add_observation(OBSERVATION + 1, [1000, 1001], consensus=other)  # a wrong name
        settings = trained_registry.settings_for(
            tmp_path / "data", fetch_allow_hosts=mo.host, mo_api_url=mo.base, mo_request_interval=0.0
        )
        store = open_store(settings.resolved_database_url)
        user = make_account(store)
        with live_server(create_app(settings)) as base_url:
            yield {"url": base_url, "user": user, "store": store, "mo": mo, "species": species, "photos": photos}
        store.close()


def _upload(c, photos: list[bytes], **fields: str):
    files = [("file", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
    return c.post("/observations", files=files, data={"top_k": "3", **fields})


def test_three_uploads_give_a_combined_answer_and_three_stored_predictions(observed):
    store = observed["store"]
    with client(observed["url"], auth=observed["user"].auth) as c:
        answer = _upload(c, observed["photos"])
        assert answer.status_code == 200, answer.text
        body = answer.json()
        again = c.get(f"/observations/{body['id']}")
        mine = c.get("/observations/recent").json()
    assert len(body["results"]) == 3 and body["results"][0]["species"] == observed["species"]
    probabilities = [r["probability"] for r in body["results"]]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-6
    assert len(body["photos"]) == 3 and all(p["prediction"] and p["error"] is None for p in body["photos"])
    assert all(len(p["prediction"]["results"]) == 3 for p in body["photos"])
    assert body["mo"] is None and body["agrees_with_consensus"] is None
    ids = [p["prediction"]["id"] for p in body["photos"]]
    assert all(store.get_prediction(i) is not None for i in ids)
    assert again.status_code == 200 and again.json()["prediction_ids"] == ids
    assert mine[0]["id"] == body["id"]


def test_urls_and_an_mo_observation_resolve_to_the_same_photos_and_check_the_consensus(observed):
    mo = observed["mo"]
    urls = [f"{mo.base}/images/orig/{1000 + i}.jpg" for i in range(3)]
    with client(observed["url"], auth=observed["user"].auth) as c:
        by_urls = c.post("/observations", json={"urls": urls, "top_k": 2})
        by_page = c.post("/observations", json={"mo_observation": f"{mo.base}/obs/{OBSERVATION}"})
        by_id = c.post("/observations", json={"mo_observation": str(OBSERVATION + 1)})
    for answer in (by_urls, by_page, by_id):
        assert answer.status_code == 200, answer.text
    assert [p["source"] for p in by_urls.json()["photos"]] == urls
    assert {p["prediction"]["image_sha256"] for p in by_page.json()["photos"]} == {
        p["prediction"]["image_sha256"] for p in by_urls.json()["photos"]
    }
    page = by_page.json()
    assert page["mo"] == {"observation_id": OBSERVATION, "consensus": observed["species"]}
    assert page["agrees_with_consensus"] is True
    assert by_id.json()["agrees_with_consensus"] is False, "the beginner's name is not ChampiPy's"
    assert set(mo.file_paths()) == {f"/images/640/{1000 + i}.jpg" for i in range(3)}, "640 px, never orig"


def test_a_photo_in_two_observations_is_computed_once(observed):
    photo = observed["photos"][0]
    with client(observed["url"], auth=observed["user"].auth) as c:
        first = _upload(c, [photo, observed["photos"][1]]).json()
        second = _upload(c, [observed["photos"][2], photo]).json()
    assert first["photos"][0]["prediction"]["cached"] is False
    assert second["photos"][1]["prediction"]["cached"] is True
    assert second["photos"][1]["prediction"]["image_sha256"] == first["photos"][0]["prediction"]["image_sha256"]


def test_a_bad_photo_is_reported_alone_and_only_no_usable_photo_fails_the_request(observed):
    with client(observed["url"], auth=observed["user"].auth) as c:
        mixed = _upload(c, [observed["photos"][0], b"<html>not a photo</html>"])
        none_usable = _upload(c, [b"not a photo", b"nor this"])
    assert mixed.status_code == 200, mixed.text
    good, bad = mixed.json()["photos"]
    assert good["prediction"] is not None and bad["prediction"] is None
    assert bad["error"]["error"] == "not_an_image" and bad["source"] == "p1.jpg"
    assert len(mixed.json()["model"]["version"]) > 0
    assert none_usable.status_code == 415 and none_usable.json()["error"] == "not_an_image"


@pytest.mark.parametrize("n", [0, 6])
def test_an_observation_has_one_to_five_photos(observed, n):
    photo = observed["photos"][0]
    with client(observed["url"], auth=observed["user"].auth) as c:
        as_json = c.post("/observations", json={"urls": ["https://example.org/x.jpg"] * n})
        as_upload = _upload(c, [photo] * n) if n else c.post("/observations", files={}, data={"top_k": "3"})
    assert as_json.status_code == 422 and "1 to 5" in as_json.json()["detail"]
    assert as_upload.status_code == 422


def test_urls_and_an_observation_together_or_neither_are_refused(observed):
    with client(observed["url"], auth=observed["user"].auth) as c:
        both = c.post("/observations", json={"urls": ["https://example.org/x.jpg"], "mo_observation": "1"})
        neither = c.post("/observations", json={"top_k": 3})
        not_mo = c.post("/observations", json={"mo_observation": "https://example.org/obs/1"})
        unknown = c.post("/observations", json={"mo_observation": "999999"})
    assert both.status_code == neither.status_code == not_mo.status_code == 422
    assert unknown.status_code == 404


def test_feedback_on_an_observation_labels_every_photo(observed):
    store = observed["store"]
    with client(observed["url"], auth=observed["user"].auth) as c:
        body = _upload(c, observed["photos"]).json()
        answer = c.post(f"/observations/{body['id']}/feedback", json={"species": observed["species"].upper()})
        missing = c.post("/observations/nope/feedback", json={"species": observed["species"]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["feedback_species"] == observed["species"]
    for photo in body["photos"]:
        image = store.get_image(photo["prediction"]["image_sha256"])
        assert image is not None and (image.label, image.label_source) == (observed["species"], LabelSource.CONFIRMED)
    assert missing.status_code == 404
