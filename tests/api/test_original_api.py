"""/v0: the original ChampiPy's answers, shapes and status codes, over HTTP on a trained model."""

from __future__ import annotations

from pathlib import Path

import pytest

from champipy.api.app import create_app
from champipy.store import open_store
from support.accounts import make_account
from support.image_server import ImageServer
from support.live_server import client, live_server


@pytest.fixture
def original(tmp_path, trained_registry):
    probe = trained_registry.settings_for(tmp_path / "probe")
    photo = sorted((Path(probe.eval_dir) / "Amanita muscaria").iterdir())[0].read_bytes()
    pages = {
        "/amanita.jpg": (200, photo, "image/jpeg"),
        "/page.jpg": (200, b"<html>not a photo</html>", "image/jpeg"),
    }
    with ImageServer(pages) as images:
        settings = trained_registry.settings_for(tmp_path / "data", fetch_allow_hosts=images.host)
        store = open_store(settings.resolved_database_url)
        user, admin = make_account(store), make_account(store, admin=True, prefix="admin")
        with live_server(create_app(settings)) as base_url:
            yield {"base": base_url + "/v0", "user": user, "admin": admin, "images": images}
        store.close()


def test_status_dbconnex_and_user_answer_like_the_original(original):
    with client(original["base"]) as c:
        assert c.get("/status").json() is True
        assert c.get("/dbconnex").json() is True
        admin = original["admin"]
        assert c.get("/user", auth=admin.auth).json() == f"Hello {admin.username}, are you admin ? True"
        user = original["user"]
        assert c.get("/user", auth=user.auth).json() == f"Hello {user.username}, are you admin ? False"


def test_predictions_are_a_list_of_names_and_percents_one_by_default(original):
    with client(original["base"], auth=original["user"].auth) as c:
        one = c.get("/predictions", params={"file": original["images"].url("/amanita.jpg")})
        three = c.get("/predictions", params={"file": original["images"].url("/amanita.jpg"), "nb_preds": "3"})
    assert one.status_code == 200 and three.status_code == 200
    [top] = one.json()
    assert set(top) == {"name", "proba"} and 1.0 < top["proba"] <= 100.0  # percent, not a fraction
    assert top["proba"] == round(top["proba"], 2)
    assert [p["name"] for p in three.json()][0] == top["name"] and len(three.json()) == 3
    assert [p["proba"] for p in three.json()] == sorted((p["proba"] for p in three.json()), reverse=True)


@pytest.mark.parametrize("nb_preds", ["zero", "0", "1000"])
def test_a_bad_nb_preds_is_418_like_the_original(original, nb_preds):
    with client(original["base"], auth=original["user"].auth) as c:
        answer = c.get("/predictions", params={"file": original["images"].url("/amanita.jpg"), "nb_preds": nb_preds})
    assert answer.status_code == 418, answer.text


def test_a_page_that_is_not_a_photo_is_418(original):
    with client(original["base"], auth=original["user"].auth) as c:
        answer = c.get("/predictions", params={"file": original["images"].url("/page.jpg")})
    assert answer.status_code == 418, answer.text


def test_admin_numbers_are_bare_percents_and_counts(original):
    with client(original["base"], auth=original["admin"].auth) as c:
        accuracy = c.get("/accuracy").json()
        new_images = c.get("/nb_new_img", params={"model_name": "VGG16", "stage": "Production"}).json()
        c.get("/predictions", params={"file": original["images"].url("/amanita.jpg")})
        past = c.get("/past_pred_acc", params={"nb_last_preds": 10}).json()
    assert isinstance(accuracy, float) and 1.0 < accuracy <= 100.0
    assert isinstance(new_images, int) and new_images >= 0
    assert isinstance(past, float) and 1.0 < past <= 100.0


@pytest.mark.parametrize("path", ["/accuracy", "/past_pred_acc", "/nb_new_img", "/finetune"])
def test_a_non_admin_gets_401_on_admin_routes_like_the_original(original, path):
    with client(original["base"], auth=original["user"].auth) as c:
        assert c.get(path).status_code == 401


def test_the_modern_routes_keep_their_objects(original):
    with client(original["base"].removesuffix("/v0")) as c:
        assert c.get("/status").json()["status"] == "ok"
