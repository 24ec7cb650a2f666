"""Predictions over HTTP with a real trained model: uploads, URLs, bad input, the cache,
images kept for training, feedback, and model swaps while serving."""

from __future__ import annotations

import io
import random
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from champipy.api.app import create_app
from champipy.store import open_store
from champipy.store.base import LabelSource
from support.accounts import make_account
from support.image_server import ImageServer
from support.live_server import client, live_server
from support.registry_edits import register_copy_of, register_corrupt_version, set_alias


def dataset_photo(settings, species: str | None = None, index: int = 0) -> tuple[str, bytes]:
    folders = sorted(p for p in Path(settings.eval_dir).iterdir() if p.is_dir())
    folder = next(p for p in folders if p.name == species) if species else folders[0]
    path = sorted(folder.iterdir())[index]
    return folder.name, path.read_bytes()


@pytest.fixture
def served(tmp_path, trained_registry):
    """A live API serving the trained model, an image server allow-listed for URL tests."""
    name, photo = dataset_photo(trained_registry.settings_for(tmp_path / "probe"), "Amanita muscaria")
    with ImageServer(
        {
            "/images/photo.jpg": (200, photo, "image/jpeg"),
            "/images/not-an-image.jpg": (200, b"<html>hello</html>", "image/jpeg"),
        }
    ) as images:
        settings = trained_registry.settings_for(tmp_path / "data", fetch_allow_hosts=images.host)
        store = open_store(settings.resolved_database_url)
        user, admin = make_account(store), make_account(store, admin=True, prefix="admin")
        with live_server(create_app(settings)) as base_url:
            yield {
                "url": base_url,
                "user": user,
                "admin": admin,
                "store": store,
                "images": images,
                "settings": settings,
                "photo": photo,
                "species": name,
            }
        store.close()


def upload(c, data: bytes, top_k=3, filename="photo.jpg"):
    return c.post("/predictions", files={"file": (filename, data, "image/jpeg")}, data={"top_k": str(top_k)})


def test_upload_gives_ranked_species_and_is_stored(served):
    with client(served["url"], auth=served["user"].auth) as c:
        answer = upload(c, served["photo"], top_k=3)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    probabilities = [r["probability"] for r in body["results"]]
    assert len(body["results"]) == 3
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1.0 + 1e-6
    assert body["cached"] is False and body["model"]["name"] == "champipy"
    assert body["results"][0]["species"] == served["species"], "a clear eval photo of its species"
    stored = served["store"].get_prediction(body["id"])
    assert stored.username == served["user"].username and stored.image_sha256 == body["image_sha256"]
    assert stored.model_version == body["model"]["version"] and len(stored.results) == 10


def server_timing(answer) -> dict[str, float]:
    stages = {}
    for entry in answer.headers["server-timing"].split(","):
        name, _, duration = entry.strip().partition(";dur=")
        stages[name] = float(duration)
    return stages


def test_an_answer_says_where_its_time_went(served):
    with client(served["url"], auth=served["user"].auth) as c:
        computed, cached = upload(c, served["photo"]), upload(c, served["photo"])
    stages = server_timing(computed)
    steps = ["auth", "read", "hash", "cache", "decode", "preprocess", "infer", "store", "keep"]
    assert list(stages) == [*steps, "app"]
    assert all(ms >= 0 for ms in stages.values()) and stages["infer"] > 0
    # The stages follow one another inside the app: together they cannot take longer than it.
    assert sum(stages[s] for s in steps) <= stages["app"]
    assert list(server_timing(cached)) == ["auth", "read", "hash", "store", "app"], "no decoding for a cached answer"


def test_image_by_url_and_the_url_is_not_downloaded_twice(served):
    url = served["images"].url("/images/photo.jpg")
    with client(served["url"], auth=served["user"].auth) as c:
        first = c.get("/predictions", params={"file": url, "nb_preds": 2})
        second = c.get("/predictions", params={"file": url, "nb_preds": 2})
        by_json = c.post("/predictions", json={"url": url, "top_k": 1})
    assert first.status_code == 200, first.text
    assert len(first.json()["results"]) == 2 and first.json()["cached"] is False
    assert second.json()["cached"] is True and by_json.json()["cached"] is True
    assert second.json()["results"] == first.json()["results"]
    assert len(by_json.json()["results"]) == 1
    assert served["images"].hits["/images/photo.jpg"] == 1


def test_same_bytes_are_computed_once_per_model_version(served):
    with client(served["url"], auth=served["user"].auth) as c:
        first = upload(c, served["photo"], filename="a.jpg").json()
        second = upload(c, served["photo"], filename="renamed.jpg").json()
    assert second["cached"] is True and second["results"] == first["results"]
    assert second["id"] != first["id"], "every request is stored"
    store = served["store"]
    computed = [p for p in store.recent_predictions(10) if p.image_sha256 == first["image_sha256"] and not p.cached]
    assert len(computed) == 1


def test_the_cache_survives_a_restart_and_every_request_is_stored(served):
    with client(served["url"], auth=served["user"].auth) as c:
        first = upload(c, served["photo"]).json()
    # A second process on the same store starts with an empty memory: the answer comes from the store.
    with live_server(create_app(served["settings"])) as restarted, client(restarted, auth=served["user"].auth) as c:
        again = [upload(c, served["photo"]).json() for _ in range(3)]
    assert all(a["cached"] is True and a["results"] == first["results"] for a in again)
    assert all(a["kept_for_training"] == first["kept_for_training"] for a in again)
    rows = [p for p in served["store"].recent_predictions(20) if p.image_sha256 == first["image_sha256"]]
    assert sorted(p.cached for p in rows) == [False, True, True, True]


def test_confident_prediction_keeps_the_image_for_training(served):
    with client(served["url"], auth=served["user"].auth) as c:
        body = upload(c, served["photo"]).json()
    record = served["store"].get_image(body["image_sha256"])
    if body["results"][0]["probability"] > served["settings"].store_threshold:
        assert body["kept_for_training"] is True
        assert record.label == body["results"][0]["species"] and record.label_source == LabelSource.PREDICTED
    else:
        assert body["kept_for_training"] is False and record is None


@pytest.mark.parametrize("nb_preds", ["three", "1.5", "", "0", "-1", "11", "1000"])
def test_bad_nb_preds_is_422_with_a_message(served, nb_preds):
    url = served["images"].url("/images/photo.jpg")
    with client(served["url"], auth=served["user"].auth) as c:
        answer = c.get("/predictions", params={"file": url, "nb_preds": nb_preds})
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "invalid_input" and "nb_preds" in body["detail"]


@pytest.mark.parametrize("top_k", [0, 11, "x", 2.5, None])
def test_bad_top_k_in_json_is_422(served, top_k):
    with client(served["url"], auth=served["user"].auth) as c:
        answer = c.post("/predictions", json={"url": served["images"].url("/images/photo.jpg"), "top_k": top_k})
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_input"


def test_non_image_upload_and_url_are_415(served):
    with client(served["url"], auth=served["user"].auth) as c:
        uploaded = upload(c, b"%PDF-1.4 definitely not a photo")
        by_url = c.get("/predictions", params={"file": served["images"].url("/images/not-an-image.jpg")})
        truncated = upload(c, served["photo"][: len(served["photo"]) // 3])
    assert uploaded.status_code == 415 and uploaded.json()["error"] == "not_an_image"
    assert by_url.status_code == 415
    assert truncated.status_code == 415


def test_missing_remote_image_is_404_and_bad_urls_400(served):
    with client(served["url"], auth=served["user"].auth) as c:
        missing = c.get("/predictions", params={"file": served["images"].url("/images/gone.jpg")})
        not_http = c.get("/predictions", params={"file": "ftp://example.org/a.jpg"})
        nonsense = c.get("/predictions", params={"file": "not a url"})
    assert missing.status_code == 404 and missing.json()["error"] == "remote_not_found"
    assert not_http.status_code == 400 and nonsense.status_code == 400


def test_private_address_without_allow_list_is_403(served):
    with client(served["url"], auth=served["user"].auth) as c:
        answer = c.get("/predictions", params={"file": f"http://127.0.0.1:{served['images'].port + 1}/x.jpg"})
    assert answer.status_code == 403 and answer.json()["error"] == "address_not_allowed"


def test_decompression_bomb_is_refused(served):
    buffer = io.BytesIO()
    Image.new("L", (9000, 9000)).save(buffer, "PNG")  # ~81 Mpx, a few hundred KB compressed
    with client(served["url"], auth=served["user"].auth) as c:
        answer = upload(c, buffer.getvalue(), filename="bomb.png")
    assert answer.status_code == 413 and answer.json()["error"] == "too_large"


def test_multipart_without_file_and_wrong_content_type(served):
    with client(served["url"], auth=served["user"].auth) as c:
        no_file = c.post("/predictions", data={"top_k": "3"}, files={"other": ("x.txt", b"x", "text/plain")})
        xml = c.post("/predictions", content=b"<url/>", headers={"content-type": "application/xml"})
        bad_json = c.post("/predictions", content=b"{not json", headers={"content-type": "application/json"})
    assert no_file.status_code == 422 and "file" in no_file.json()["detail"]
    assert xml.status_code == 422
    assert bad_json.status_code == 422


def test_predictions_need_a_user(served):
    with client(served["url"]) as c:
        assert c.get("/predictions", params={"file": "http://x/y.jpg"}).status_code == 401
        assert upload(c, served["photo"]).status_code == 401


def test_feedback_confirms_or_corrects_and_stores_the_image(served):
    with client(served["url"], auth=served["user"].auth) as c:
        body = upload(c, served["photo"]).json()
        corrected = c.post(f"/predictions/{body['id']}/feedback", json={"species": "Coprinus comatus"})
        image = served["store"].get_image(body["image_sha256"])
        not_a_name = c.post(f"/predictions/{body['id']}/feedback", json={"species": "Coprinus 42!"})
        wrong_type = c.post(f"/predictions/{body['id']}/feedback", json={"species": 42})
        missing = c.post("/predictions/does-not-exist/feedback", json={"species": "Coprinus comatus"})
        new_species = c.post(f"/predictions/{body['id']}/feedback", json={"species": "boletus EDULIS"})
    assert corrected.status_code == 200 and corrected.json()["feedback_species"] == "Coprinus comatus"
    assert image.label == "Coprinus comatus" and image.label_source == LabelSource.CONFIRMED
    assert not_a_name.status_code == 422 and "Latin name" in not_a_name.json()["detail"]
    assert wrong_type.status_code == 422
    assert new_species.status_code == 200 and new_species.json()["feedback_species"] == "Boletus edulis"
    assert served["store"].get_image(body["image_sha256"]).label == "Boletus edulis", "a species it does not know"
    assert missing.status_code == 404
    with client(served["url"], auth=served["admin"].auth) as other:
        assert other.get(f"/predictions/{body['id']}").status_code == 200
    intruder = make_account(served["store"])
    with client(served["url"], auth=intruder.auth) as c:
        assert c.post(f"/predictions/{body['id']}/feedback", json={"species": "Coprinus comatus"}).status_code == 404


def test_feedback_on_an_uncertain_image_still_stores_it(served):
    # Heavy noise: the model is unsure, so the image is not kept, but an expert can label it.
    rng = random.Random(3)
    noise = Image.frombytes("RGB", (256, 256), bytes(rng.randrange(256) for _ in range(256 * 256 * 3)))
    buffer = io.BytesIO()
    noise.save(buffer, "JPEG")
    with client(served["url"], auth=served["user"].auth) as c:
        body = upload(c, buffer.getvalue(), filename="noise.jpg").json()
        answer = c.post(f"/predictions/{body['id']}/feedback", json={"species": "Trametes versicolor"})
        again = upload(c, buffer.getvalue(), filename="noise.jpg").json()
    assert body["kept_for_training"] is False
    assert answer.status_code == 200
    assert again["cached"] is True and again["kept_for_training"] is True, "the answer follows the feedback"
    image = served["store"].get_image(body["image_sha256"])
    assert image.label == "Trametes versicolor" and image.label_source == LabelSource.CONFIRMED


def test_recent_predictions_are_mine_only(served):
    with client(served["url"], auth=served["user"].auth) as c:
        upload(c, served["photo"])
        mine = c.get("/predictions/recent").json()
    with client(served["url"], auth=served["admin"].auth) as c:
        theirs = c.get("/predictions/recent").json()
    assert mine and all(p["username"] == served["user"].username for p in mine)
    assert theirs == []


def test_model_swap_mid_traffic_fails_no_request(served, trained_registry):
    settings = served["settings"]
    old_version = trained_registry.version
    new_version = register_copy_of(settings, old_version)
    errors: list[str] = []
    per_client: list[list[str]] = [[] for _ in range(3)]
    stop = threading.Event()

    def traffic(seed: int) -> None:
        with client(served["url"], auth=served["user"].auth) as c:
            i = 0
            while not stop.is_set():
                # a fresh image each time so the cache never answers
                img = Image.open(io.BytesIO(served["photo"])).rotate(seed * 50 + i, expand=True)
                buffer = io.BytesIO()
                img.save(buffer, "JPEG")
                answer = upload(c, buffer.getvalue())
                if answer.status_code != 200:
                    errors.append(answer.text)
                else:
                    per_client[seed].append(answer.json()["model"]["version"])
                i += 1

    threads = [threading.Thread(target=traffic, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    with client(served["url"], auth=served["admin"].auth) as admin:
        promoted = admin.post(f"/models/{new_version}/promote")
    assert promoted.status_code == 200, promoted.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(v and v[-1] == new_version for v in per_client):
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    for versions in per_client:
        assert versions[0] == old_version and versions[-1] == new_version
        # each client sends one request after another: once it saw the new model, never the old
        switch = versions.index(new_version)
        assert all(v == new_version for v in versions[switch:])


def test_corrupt_version_never_replaces_the_serving_one(served, trained_registry):
    settings = served["settings"]
    bad_version = register_corrupt_version(settings, trained_registry.version)
    set_alias(settings, bad_version)  # as if promoted from the MLflow UI
    with client(served["url"], auth=served["user"].auth) as c:
        deadline = time.monotonic() + 15
        status = c.get("/status").json()
        while time.monotonic() < deadline and not status["model"].get("last_error"):
            time.sleep(0.2)
            status = c.get("/status").json()
        answer = upload(c, served["photo"])
    assert status["model"]["version"] == trained_registry.version
    assert bad_version in status["model"]["last_error"]
    assert answer.status_code == 200 and answer.json()["model"]["version"] == trained_registry.version


def test_no_production_model_answers_503_with_help(tmp_path, trained_registry):
    settings = trained_registry.settings_for(tmp_path / "data")
    from support.registry_edits import remove_alias

    remove_alias(settings)
    store = open_store(settings.resolved_database_url)
    user = make_account(store)
    store.close()
    with live_server(create_app(settings)) as base_url, client(base_url, auth=user.auth) as c:
        answer = c.post("/predictions", files={"file": ("a.jpg", b"x", "image/jpeg")})
        status = c.get("/status").json()
    assert answer.status_code == 503
    assert answer.json()["error"] == "no_model" and "champipy train" in answer.json()["detail"]
    assert status["model"]["loaded"] is False
