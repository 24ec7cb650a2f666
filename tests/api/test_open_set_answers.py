"""Open-set verdicts over HTTP with a real trained model: a photo of a known species is
recognised, a face is not (and is never kept for training), ``reject=false`` names the top
species anyway, the cache answers the same verdict, and a version registered before open-set
answers existed still serves."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest

from champipy.api.app import create_app
from champipy.images import decode_image
from champipy.model.classifier import Classifier
from champipy.registry import Registry
from champipy.store import open_store
from champipy.store.base import LabelSource
from support.accounts import make_account
from support.image_server import ImageServer
from support.live_server import client, live_server
from support.ood_images import one_of_each
from support.registry_edits import register_version_without_open_set, set_alias


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _eval_photos(settings) -> list[tuple[str, bytes]]:
    return [
        (folder.name, path.read_bytes())
        for folder in sorted(p for p in Path(settings.eval_dir).iterdir() if p.is_dir())
        for path in sorted(folder.iterdir())
    ]


@pytest.fixture
def served(tmp_path, trained_registry):
    face = _png(one_of_each()["face"])
    with ImageServer({"/images/face.png": (200, face, "image/png")}) as images:
        settings = trained_registry.settings_for(tmp_path / "data", fetch_allow_hosts=images.host)
        store = open_store(settings.resolved_database_url)
        user = make_account(store)
        classifier = Classifier.load(Registry(settings).download_serving_model(trained_registry.version))
        with live_server(create_app(settings)) as base_url:
            yield {
                "url": base_url,
                "user": user,
                "store": store,
                "settings": settings,
                "classifier": classifier,
                "face": face,
                "face_url": images.url("/images/face.png"),
            }
        store.close()


def _upload(c, data: bytes, **fields: str):
    return c.post("/predictions", files={"file": ("photo.png", data, "image/png")}, data={"top_k": "3", **fields})


def _local_score(classifier: Classifier, data: bytes) -> float:
    scored = classifier.predict_scored(classifier.preprocess(decode_image(data).image)[None])
    assert scored.open_set_scores is not None
    return float(scored.open_set_scores[0])


def test_a_recognised_photo_is_answered_with_its_species_and_the_server_scores_it_like_the_model(served):
    classifier = served["classifier"]
    assert classifier.open_set is not None
    threshold = classifier.open_set.threshold
    # The first eval photo the model itself recognises and gets right (the model's quality is
    # the model suite's business; this checks that the answer carries the model's verdict).
    species, photo = next(
        (species, photo)
        for species, photo in _eval_photos(served["settings"])
        if _local_score(classifier, photo) <= threshold
        and classifier.labels[int(classifier.predict_images([decode_image(photo).image])[0].argmax())] == species
    )
    with client(served["url"], auth=served["user"].auth) as c:
        answer = _upload(c, photo)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["recognised"] is True and body["rejected"] is False
    assert body["answer"] == body["results"][0]["species"] == species
    assert body["verdict"].startswith(f"Most likely {species}")
    assert body["open_set"]["threshold"] == pytest.approx(threshold)
    assert body["open_set"]["score"] == pytest.approx(_local_score(classifier, photo), abs=1e-4)


def test_a_face_is_not_recognised_keeps_its_ranked_species_and_is_not_kept_for_training(served):
    store = served["store"]
    with client(served["url"], auth=served["user"].auth) as c:
        answer = _upload(c, served["face"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["recognised"] is False and body["rejected"] is True and body["answer"] is None
    assert body["verdict"].startswith("Not one of the 10 species ChampiPy knows")
    assert len(body["results"]) == 3 and body["results"][0]["probability"] >= body["results"][1]["probability"]
    assert body["open_set"]["score"] > body["open_set"]["threshold"]
    assert body["kept_for_training"] is False
    assert store.get_image(body["image_sha256"]) is None
    spooled = Path(served["settings"].data_dir) / "spool" / body["image_sha256"]
    assert spooled.read_bytes() == served["face"], "kept in the spool for an expert's label"
    stored = store.get_prediction(body["id"])
    assert stored is not None and stored.open_set is not None and not stored.open_set.recognised

    # an expert may still label it: the spooled bytes become a confirmed image
    with client(served["url"], auth=served["user"].auth) as c:
        feedback = c.post(f"/predictions/{body['id']}/feedback", json={"species": body["results"][0]["species"]})
    assert feedback.status_code == 200, feedback.text
    image = store.get_image(body["image_sha256"])
    assert image is not None and image.label_source == LabelSource.CONFIRMED


def test_reject_false_names_the_top_species_in_every_way_of_asking_but_keeps_nothing(served):
    with client(served["url"], auth=served["user"].auth) as c:
        answers = {
            "form": _upload(c, served["face"], reject="false"),
            "json": c.post("/predictions", json={"url": served["face_url"], "top_k": 3, "reject": False}),
            "query": c.get("/predictions", params={"file": served["face_url"], "nb_preds": 3, "reject": "false"}),
            "query, rejecting": c.get("/predictions", params={"file": served["face_url"], "nb_preds": 3}),
        }
    for way, answer in answers.items():
        assert answer.status_code == 200, (way, answer.text)
    for way in ("form", "json", "query"):
        body = answers[way].json()
        assert body["recognised"] is False and body["rejected"] is False, way
        assert body["answer"] == body["results"][0]["species"], way
        assert "Rejection is off" in body["verdict"], way
        assert body["kept_for_training"] is False, way
    assert answers["query, rejecting"].json()["answer"] is None


def test_the_cache_answers_the_same_verdict(served):
    with client(served["url"], auth=served["user"].auth) as c:
        first = _upload(c, served["face"]).json()
        second = _upload(c, served["face"]).json()
    assert (first["cached"], second["cached"]) == (False, True)
    for field in ("recognised", "rejected", "answer", "verdict", "open_set"):
        assert second[field] == first[field], field


def test_a_version_registered_before_open_set_answers_still_serves_and_says_so(served):
    settings = served["settings"]
    old = register_version_without_open_set(settings, served["classifier"].version)
    set_alias(settings, old)
    with client(served["url"], auth=served["user"].auth) as c:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and c.get("/status").json()["model"]["version"] != old:
            time.sleep(0.2)
        status = c.get("/status").json()["model"]
        answer = _upload(c, served["face"])
    assert status["version"] == old and status.get("open_set") is None
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"]["version"] == old
    assert body["recognised"] is None and body["open_set"] is None and body["rejected"] is False
    assert body["answer"] == body["results"][0]["species"]
    assert "no open-set check" in body["verdict"]
    # the same probabilities as the version with a score: only the verdict is missing
    scored = served["classifier"].predict_images([decode_image(served["face"]).image])[0]
    assert body["results"][0]["probability"] == pytest.approx(float(np.sort(scored)[-1]), abs=1e-4)
